/**
 * Run a PostgreSQL client tool against one or two endpoints. Passwords go
 * through a private passfile (mode 0600, removed afterwards), never through
 * argv or the environment, and never into the output pgferry keeps.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { redact, toUrl, type ConnInfo } from './conn';

/** Escape a field of a .pgpass line. */
export function pgpassField(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
}

/**
 * The .pgpass lines for some endpoints. An endpoint without a password in its
 * URL falls back as libpq would: PGPASSWORD, then the user's own passfile
 * (PGPASSFILE or ~/.pgpass), whose lines are appended.
 */
export function pgpassLines(conns: readonly ConnInfo[], env: NodeJS.ProcessEnv = process.env): string {
  const lines = conns.flatMap((c) => {
    const pw = c.password ?? env['PGPASSWORD'];
    return pw === undefined ? [] : [[c.host, String(c.port), '*', c.user, pw].map(pgpassField).join(':')];
  });
  if (conns.some((c) => c.password === undefined)) {
    const own = env['PGPASSFILE'] ?? (env['HOME'] ? path.join(env['HOME'], '.pgpass') : undefined);
    if (own && existsSync(own))
      lines.push(
        ...readFileSync(own, 'utf8')
          .split('\n')
          .filter((l) => l.trim() && !l.startsWith('#')),
      );
  }
  return lines.join('\n') + '\n';
}

/** A libpq connection string for `-d`, without the password. */
export function libpqUrl(c: ConnInfo): string {
  return toUrl(c, { password: false });
}

/** The caller's environment without libpq variables (PGPASSWORD, PGHOST, …), plus the passfile. */
export function toolEnv(passfile: string, base: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined && !k.startsWith('PG')) env[k] = v;
  return { ...env, PGPASSFILE: passfile, PGAPPNAME: 'pgferry', PGCONNECT_TIMEOUT: '15', LC_MESSAGES: 'C', LC_ALL: 'C' };
}

export interface ToolRun {
  readonly exitCode: number;
  /** stderr with passwords removed. */
  readonly stderr: string;
  readonly stdout: string;
}

export interface ToolOptions {
  /** Called with each stderr line (already redacted), e.g. for progress. */
  readonly onStderrLine?: (line: string) => void;
  readonly cwd?: string;
  /** Collect stdout (pg_dumpall's script); default ignore it. */
  readonly captureStdout?: boolean;
  readonly signal?: AbortSignal;
  /** Extra environment (e.g. PGOPTIONS), on top of the cleaned one. */
  readonly env?: Readonly<Record<string, string>>;
}

export async function runTool(file: string, args: readonly string[], conns: readonly ConnInfo[], opts: ToolOptions = {}): Promise<ToolRun> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgferry-pass-'));
  const passfile = path.join(dir, 'pgpass');
  writeFileSync(passfile, pgpassLines(conns), { mode: 0o600 });
  const stderrLines: string[] = [];
  try {
    const sub = execa(file, args, {
      reject: false,
      stdin: 'ignore',
      stdout: opts.captureStdout ? 'pipe' : 'ignore',
      stderr: 'pipe',
      buffer: { stdout: opts.captureStdout ?? false, stderr: false },
      maxBuffer: { stdout: 1024 * 1024 * 1024 },
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      ...(opts.signal ? { cancelSignal: opts.signal } : {}),
      extendEnv: false,
      env: { ...toolEnv(passfile), ...(opts.env ?? {}) },
    });
    let rest = '';
    sub.stderr?.setEncoding('utf8');
    sub.stderr?.on('data', (chunk: string) => {
      const parts = (rest + chunk).split('\n');
      rest = parts.pop() ?? '';
      for (const raw of parts) {
        const line = redact(raw);
        stderrLines.push(line);
        opts.onStderrLine?.(line);
      }
    });
    const r = await sub;
    if (rest) {
      const line = redact(rest);
      stderrLines.push(line);
      opts.onStderrLine?.(line);
    }
    return {
      exitCode: r.exitCode ?? (r.signal ? 128 : 1),
      stderr: stderrLines.join('\n'),
      stdout: typeof r.stdout === 'string' ? r.stdout : '',
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
