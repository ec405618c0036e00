/**
 * PostgreSQL client tools (pg_dump, pg_dumpall, pg_restore, psql): find the
 * newest installed set, and refuse one older than the source server, because
 * pg_dump cannot dump a server newer than itself.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { loadExeca, withoutSecrets } from './tool-exec';
import { PgrelocateError } from './errors';

export interface ClientTools {
  readonly major: number;
  readonly version: string;
  readonly bindir: string;
  readonly pgDump: string;
  readonly pgDumpAll: string;
  readonly pgRestore: string;
}

/** Directories that may hold client tools, in order of preference. */
export function candidateBindirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const dirs: string[] = [];
  if (env['PGRELOCATE_PG_BINDIR']) dirs.push(env['PGRELOCATE_PG_BINDIR']);
  for (const root of ['/usr/lib/postgresql', '/usr/pgsql']) {
    if (!existsSync(root)) continue;
    const majors = readdirSync(root)
      .filter((d) => /^\d+(\.\d+)?$/.test(d))
      .sort((a, b) => Number(b) - Number(a));
    for (const m of majors) dirs.push(path.join(root, m, 'bin'));
  }
  for (const p of (env['PATH'] ?? '').split(path.delimiter)) if (p) dirs.push(p);
  return [...new Set(dirs)];
}

/** Parse `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` → major 15. */
export function parseToolVersion(text: string): { major: number; version: string } | undefined {
  const m = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?/.exec(text);
  if (!m) return undefined;
  const first = Number(m[1]);
  const major = first >= 10 ? first : Number(`${first}.${m[2] ?? 0}`);
  return { major, version: text.trim().split(/\s+/).slice(2).join(' ') };
}

async function toolsIn(bindir: string): Promise<ClientTools | undefined> {
  const pgDump = path.join(bindir, 'pg_dump');
  const pgRestore = path.join(bindir, 'pg_restore');
  const pgDumpAll = path.join(bindir, 'pg_dumpall');
  if (![pgDump, pgRestore, pgDumpAll].every((p) => existsSync(p))) return undefined;
  const { execa } = await loadExeca();
  const r = await execa(pgDump, ['--version'], { reject: false, extendEnv: false, env: withoutSecrets() });
  const v = r.exitCode === 0 ? parseToolVersion(r.stdout) : undefined;
  return v ? { ...v, bindir, pgDump, pgDumpAll, pgRestore } : undefined;
}

/**
 * Every installed set of client tools, newest first. The candidates are asked
 * for their versions side by side (and the preflight asks while the servers
 * answer): one after another, after the inventories, they took 90 ms of every
 * preflight, Debian's /usr/bin/pg_dump being a Perl wrapper.
 */
export async function findClientTools(env: NodeJS.ProcessEnv = process.env): Promise<ClientTools[]> {
  const probed = await Promise.all(candidateBindirs(env).map((dir) => toolsIn(dir)));
  const found: ClientTools[] = [];
  const seen = new Set<string>();
  for (const t of probed) {
    if (t && !seen.has(t.version)) {
      seen.add(t.version);
      found.push(t);
    }
  }
  // An explicit PGRELOCATE_PG_BINDIR wins; otherwise newest first.
  const explicit = env['PGRELOCATE_PG_BINDIR'] ? found.filter((t) => t.bindir === env['PGRELOCATE_PG_BINDIR']) : [];
  return [...explicit, ...found.filter((t) => !explicit.includes(t)).sort((a, b) => b.major - a.major)];
}

/** The install line that gives client tools of a major. */
export function installHint(major: number): string {
  const m = Math.max(major, 12);
  return (
    `install PostgreSQL ${m} client tools or newer — Debian/Ubuntu with the PGDG apt repository: ` +
    `apt-get install -y postgresql-client-${m}; RHEL: dnf install -y postgresql${m}; macOS: brew install postgresql@${m} — ` +
    `or point PGRELOCATE_PG_BINDIR at their bin directory`
  );
}

/**
 * Pick client tools able to dump a server of `sourceMajor`: the newest set
 * whose major is at least the source's.
 */
export async function selectClientTools(sourceMajor: number, env: NodeJS.ProcessEnv = process.env): Promise<ClientTools> {
  return chooseClientTools(await findClientTools(env), sourceMajor);
}

/** The first of `all` (findClientTools' order) able to dump a server of `sourceMajor`, or the error that names the install. Pure. */
export function chooseClientTools(all: readonly ClientTools[], sourceMajor: number): ClientTools {
  const usable = all.find((t) => t.major >= sourceMajor);
  if (usable) return usable;
  if (all.length === 0) {
    throw new PgrelocateError(
      'no-client-tools',
      'No pg_dump / pg_restore found on this machine.',
      `To migrate a PostgreSQL ${sourceMajor} source, ${installHint(sourceMajor)}.`,
    );
  }
  const newest = all[0]!;
  throw new PgrelocateError(
    'client-tools-too-old',
    `pg_dump ${newest.version} (${newest.bindir}) is older than the source server (PostgreSQL ${sourceMajor}); pg_dump cannot dump a newer server.`,
    `${installHint(sourceMajor)[0]!.toUpperCase()}${installHint(sourceMajor).slice(1)}.`,
    { found: all.map((t) => ({ version: t.version, bindir: t.bindir })) },
  );
}
