/**
 * Run a PostgreSQL client tool against one or two endpoints. Passwords go
 * through a private passfile (mode 0600, removed afterwards), never through
 * argv or the environment, and never into the output pgrelocate keeps.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { redact, toUrl, type ConnInfo } from './conn';

/**
 * execa, loaded when the first process starts rather than with the CLI: it
 * and its dependencies take about 65 ms to load, which the preflight's waits
 * on the servers then hide. Every module the CLI loads takes it from here.
 */
let execaModule: Promise<typeof import('execa')> | undefined;
export function loadExeca(): Promise<typeof import('execa')> {
  return (execaModule ??= import('execa'));
}

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

/**
 * The caller's environment without the passwords pgrelocate was given: the
 * endpoint URLs (PGRELOCATE_*_URL) and PGPASSWORD. For children that need no
 * database access of pgrelocate's: version probes, the user's hooks. Pure.
 */
export function withoutSecrets(base: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined && !/^PGRELOCATE_.*_URL$|^PGPASSWORD$/.test(k)) env[k] = v;
  return env;
}

/** The caller's environment without libpq variables (PGPASSWORD, PGHOST, …), plus the passfile. */
export function toolEnv(passfile: string, base: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined && !k.startsWith('PG')) env[k] = v;
  return { ...env, PGPASSFILE: passfile, PGAPPNAME: 'pgrelocate', PGCONNECT_TIMEOUT: '15', LC_MESSAGES: 'C', LC_ALL: 'C' };
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

/**
 * PGOPTIONS of every tool session: no statement or lock timeout from the
 * start. pg_dump turns them off itself, but only after its first queries, which
 * a database's short statement_timeout can cancel (seen with 5 ms over TLS).
 * Both settings exist in every server pgrelocate supports (9.4+). Pure.
 */
export function toolOptions(extra?: string): string {
  return ['-c statement_timeout=0 -c lock_timeout=0', extra].filter((x) => x).join(' ');
}

const PASS_PREFIX = 'pgrelocate-pass-';

/** Whether a process is alive (signal 0 tests without sending). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Remove passfile directories left by pgrelocate processes that were killed
 * (SIGKILL runs no cleanup): their names carry the owner's pid.
 */
export function sweepPassfiles(dir: string = os.tmpdir()): string[] {
  const swept: string[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync(dir);
  } catch {
    return swept;
  }
  for (const e of entries) {
    const pid = Number(new RegExp(`^${PASS_PREFIX}(\\d+)-`).exec(e)?.[1]);
    if (!pid || pid === process.pid || alive(pid)) continue;
    rmSync(path.join(dir, e), { recursive: true, force: true });
    swept.push(e);
  }
  return swept;
}

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((f) => existsSync(f));

/**
 * The command line that runs a tool: through util-linux's `setpriv
 * --pdeathsig TERM` where it exists, so a tool ends with pgrelocate even when
 * pgrelocate is killed (an orphaned pg_restore kept writing otherwise).
 */
export function toolCommand(file: string, args: readonly string[], setpriv: string | null = SETPRIV ?? null): [string, string[]] {
  return setpriv ? [setpriv, ['--pdeathsig', 'TERM', '--', file, ...args]] : [file, [...args]];
}
export async function runTool(file: string, args: readonly string[], conns: readonly ConnInfo[], opts: ToolOptions = {}): Promise<ToolRun> {
  sweepPassfiles();
  const dir = mkdtempSync(path.join(os.tmpdir(), `${PASS_PREFIX}${process.pid}-`));
  const passfile = path.join(dir, 'pgpass');
  writeFileSync(passfile, pgpassLines(conns), { mode: 0o600 });
  const stderrLines: string[] = [];
  try {
    const [cmd, argv] = toolCommand(file, args);
    const { execa } = await loadExeca();
    const sub = execa(cmd, argv, {
      reject: false,
      stdin: 'ignore',
      stdout: opts.captureStdout ? 'pipe' : 'ignore',
      stderr: 'pipe',
      buffer: { stdout: opts.captureStdout ?? false, stderr: false },
      maxBuffer: { stdout: 1024 * 1024 * 1024 },
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      ...(opts.signal ? { cancelSignal: opts.signal } : {}),
      extendEnv: false,
      env: { ...toolEnv(passfile), ...(opts.env ?? {}), PGOPTIONS: toolOptions(opts.env?.['PGOPTIONS']) },
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

/** Tail of a tool's stderr without the verbose chatter. */
export function errorLines(stderr: string, n = 12): string {
  const lines = stderr.split('\n').filter((l) => /error|fatal|could not|failed|denied/i.test(l));
  return (lines.length ? lines : stderr.split('\n')).slice(-n).join('\n');
}
