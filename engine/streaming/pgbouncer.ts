/**
 * A cutover through PgBouncer, so the application's transactions wait instead
 * of failing: PgBouncer PAUSEs the database (transactions in flight finish,
 * new ones queue in the pooler), pgrelocate fences, moves and switches, then
 * points PgBouncer's entry for the database at the target (its configuration
 * file, then RELOAD) and RESUMEs: the queued transactions run on the target.
 * PgDog's CUTOVER does the same inside its pooler; PgBouncer needs its admin
 * console and its configuration file, which is what `--pgbouncer-admin` and
 * `--pgbouncer-ini` name.
 *
 * A paused PgBouncer must not outlive pgrelocate: a watchdog process started
 * with the pause RESUMEs it if pgrelocate dies (its pipe closes) or runs past
 * --max-blackout, unless pgrelocate disarms it first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { sslConfig, type ConnInfo } from '../conn';
import { PgrelocateError } from '../errors';

export interface PgbouncerTarget {
  /** The admin console (database `pgbouncer`, a user in admin_users). */
  readonly admin: ConnInfo;
  /** The configuration file that holds the database's entry in [databases]. */
  readonly ini: string;
  /** The database's name in PgBouncer (default: the source database's). */
  readonly database?: string;
}

/** The options with the pool's name resolved. */
export type Pool = PgbouncerTarget & { readonly database: string };

/** A session of PgBouncer's admin console: simple queries only, no startup options (PgBouncer refuses them). */
export async function adminSession(admin: ConnInfo): Promise<pg.Client> {
  const open = async (ssl: pg.ClientConfig['ssl']): Promise<pg.Client> => {
    const c = new pg.Client({
      host: admin.host,
      port: admin.port,
      user: admin.user,
      password: admin.password,
      database: 'pgbouncer',
      ssl,
      connectionTimeoutMillis: 15_000,
    });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  };
  try {
    try {
      return await open(sslConfig(admin));
    } catch (e) {
      // libpq's prefer and allow: a PgBouncer without TLS of its own is reached in plain text.
      if (!['prefer', 'allow'].includes(admin.sslmode) || !/does not support SSL/i.test((e as Error).message)) throw e;
      return await open(false);
    }
  } catch (e) {
    throw new PgrelocateError(
      'pgbouncer-failed',
      `Cannot reach PgBouncer's admin console at ${admin.host}:${admin.port} as ${admin.user}: ${(e as Error).message}`,
      'Check --pgbouncer-admin: database pgbouncer, a user listed in its admin_users, the password in the URL, PGPASSWORD or a passfile.',
    );
  }
}

export interface PoolEntry {
  readonly name: string;
  readonly host: string | null;
  readonly port: number;
  readonly database: string;
  readonly poolMode: string | null;
  readonly paused: boolean;
}

/** The database's entry as PgBouncer shows it (SHOW DATABASES), or null. */
export async function poolEntry(c: pg.Client, name: string): Promise<PoolEntry | null> {
  const r = await c.query<Record<string, string | number | null>>('SHOW DATABASES');
  const row = r.rows.find((x) => x['name'] === name);
  if (!row) return null;
  return {
    name,
    host: (row['host'] as string | null) ?? null,
    port: Number(row['port']),
    database: String(row['database']),
    poolMode: (row['pool_mode'] as string | null) ?? null,
    paused: Number(row['paused']) === 1,
  };
}

/** One `key=value` pair of a PgBouncer connection string (libpq style; a value may be single-quoted). */
const PAIR = /([A-Za-z_]+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)/g;

/** The line of `[databases]` that defines `name`, and its connection string's pairs. Pure. */
export function findEntry(ini: string, name: string): { line: number; pairs: Map<string, string> } | null {
  const lines = ini.split('\n');
  let inDatabases = false;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!.trim();
    if (/^\[.*\]$/.test(l)) {
      inDatabases = l.toLowerCase() === '[databases]';
      continue;
    }
    if (!inDatabases || l === '' || l.startsWith(';') || l.startsWith('#')) continue;
    const m = /^("(?:[^"]|"")*"|[^=\s]+)\s*=\s*(.*)$/.exec(l);
    if (!m) continue;
    const key = m[1]!.startsWith('"') ? m[1]!.slice(1, -1).replace(/""/g, '"') : m[1]!;
    if (key !== name) continue;
    const pairs = new Map<string, string>();
    for (const p of m[2]!.matchAll(PAIR)) pairs.set(p[1]!.toLowerCase(), p[2]!);
    return { line: i, pairs };
  }
  return null;
}

function quoted(v: string): string {
  return /^[A-Za-z0-9_.:/-]+$/.test(v) ? v : `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/**
 * The configuration with `name`'s entry pointed at `to` (host, port,
 * dbname); every other setting of the entry (user, pool_size, auth_user…)
 * kept. Pure.
 */
export function pointEntry(ini: string, name: string, to: { host: string; port: number; dbname: string }): string {
  const e = findEntry(ini, name);
  if (!e) throw new Error(`no entry for ${name} in [databases]`);
  const lines = ini.split('\n');
  const head = /^\s*("(?:[^"]|"")*"|[^=\s]+)\s*=\s*/.exec(lines[e.line]!)![0];
  const pairs = new Map(e.pairs);
  pairs.set('host', quoted(to.host));
  pairs.set('port', String(to.port));
  pairs.set('dbname', quoted(to.dbname));
  lines[e.line] = head + [...pairs.entries()].map(([k, v]) => `${k}=${v}`).join(' ');
  return lines.join('\n');
}

/**
 * Before anything changes: the console answers, the database has an entry of
 * its own in the file and in PgBouncer, pointing at the source, in a pool
 * mode PAUSE can work with.
 */
export async function checkPgbouncer(p: Pool, source: ConnInfo): Promise<PoolEntry> {
  const c = await adminSession(p.admin);
  try {
    const entry = await poolEntry(c, p.database);
    if (!entry)
      throw new PgrelocateError(
        'pgbouncer-failed',
        `PgBouncer has no database "${p.database}"; nothing was changed.`,
        'Name the pool with --pgbouncer-database (its name in PgBouncer), or add its entry to [databases].',
      );
    let ini: string;
    try {
      ini = readFileSync(p.ini, 'utf8');
    } catch (e) {
      throw new PgrelocateError(
        'pgbouncer-failed',
        `Cannot read PgBouncer's configuration ${p.ini}: ${(e as Error).message}; nothing was changed.`,
        "Pass --pgbouncer-ini the file with the database's [databases] entry, readable and writable by pgrelocate.",
      );
    }
    if (!findEntry(ini, p.database))
      throw new PgrelocateError(
        'pgbouncer-failed',
        `${p.ini} has no line for "${p.database}" in [databases] (a "*" fallback or an %include'd file cannot be rewritten for one database); nothing was changed.`,
        `Give the database an entry of its own in [databases] of ${path.basename(p.ini)} and RELOAD PgBouncer, or pass the included file with --pgbouncer-ini.`,
      );
    if (entry.database !== source.database || (entry.port !== source.port && entry.port !== 0))
      throw new PgrelocateError(
        'pgbouncer-failed',
        `PgBouncer's "${p.database}" points at ${entry.host ?? '(socket)'}:${entry.port}/${entry.database}, not at the source ${source.host}:${source.port}/${source.database}; nothing was changed.`,
        'Point --pgbouncer-database at the pool the application uses for the source.',
      );
    const mode =
      entry.poolMode ?? (await c.query<{ key: string; value: string }>('SHOW CONFIG')).rows.find((r) => r.key === 'pool_mode')?.value;
    if (mode === 'session')
      throw new PgrelocateError(
        'pgbouncer-failed',
        `PgBouncer pools "${p.database}" in session mode, where PAUSE waits for every client to disconnect; nothing was changed.`,
        'Use pool_mode = transaction for the database, or cut over without --pgbouncer-admin (writers then wait on the fence and fail at the switch).',
      );
    return entry;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** The watchdog's side of the pipe: started with the pause, disarmed when pgrelocate resumes it itself. */
export class Watchdog {
  private constructor(private readonly child: ChildProcess) {}

  /** Start a watchdog that RESUMEs `database` if this process dies or `deadlineMs` passes before `disarm()`. */
  static arm(admin: ConnInfo, database: string, deadlineMs: number): Watchdog {
    const child = spawn(process.execPath, [path.join(__dirname, 'pgbouncer-watchdog.js')], {
      detached: true,
      stdio: ['pipe', 'ignore', 'ignore'],
      // The admin password travels in the environment, never on a command line.
      env: {
        PATH: process.env['PATH'] ?? '',
        PGRELOCATE_WATCHDOG: JSON.stringify({ admin, database, deadline: Date.now() + deadlineMs }),
      },
    });
    child.unref();
    return new Watchdog(child);
  }

  /** pgrelocate resumed (or never paused) the pool itself: the watchdog exits without acting. */
  disarm(): void {
    if (!this.child.stdin || this.child.stdin.destroyed) return;
    this.child.stdin.end('disarm\n');
  }
}

/** A pool paused by pgrelocate: the admin session that paused it and the watchdog that resumes it if pgrelocate cannot. */
export interface PausedPool {
  readonly pool: Pool;
  readonly session: pg.Client;
  readonly watchdog: Watchdog;
  /** How long PAUSE waited for transactions in flight. */
  readonly seconds: number;
}

/** Arm the watchdog, then PAUSE (waiting at most `waitMs`); the watchdog acts after `maxMs` plus 5 s. */
export async function pausePool(pool: Pool, waitMs: number, maxMs: number): Promise<PausedPool> {
  // The watchdog first: from the PAUSE on, a dead pgrelocate must not leave the pool paused.
  const watchdog = Watchdog.arm(pool.admin, pool.database, maxMs + 5000);
  let session: pg.Client | null = null;
  try {
    session = await adminSession(pool.admin);
    return { pool, session, watchdog, seconds: await pause(session, pool.database, waitMs) };
  } catch (e) {
    watchdog.disarm();
    await session?.end().catch(() => undefined);
    throw e;
  }
}

/** RESUME the pool — pointed at `at` first, when given — and disarm its watchdog, whatever happens to the first. */
export async function releasePool(p: PausedPool, at: ConnInfo | null): Promise<void> {
  try {
    if (at) await pointAtTarget(p.session, p.pool, at);
  } finally {
    try {
      await resume(p.session, p.pool.database);
    } finally {
      p.watchdog.disarm();
      await p.session.end().catch(() => undefined);
    }
  }
}

/** PAUSE the database, waiting at most `waitMs` for transactions in flight; on time-out RESUME and refuse. */
export async function pause(c: pg.Client, database: string, waitMs: number): Promise<number> {
  const t0 = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), waitMs)));
  const paused = c.query(`PAUSE ${ident(database)}`).then(() => 'ok' as const);
  paused.catch(() => undefined);
  try {
    if ((await Promise.race([paused, limit])) === 'late') {
      await resume(c, database);
      throw new PgrelocateError(
        'fence-busy',
        `PgBouncer could not pause "${database}" within ${(waitMs / 1000).toFixed(1)}s: a transaction through it did not end; it was resumed and nothing was fenced.`,
        'Find the long transaction (SHOW SERVERS on the admin console, pg_stat_activity on the source) and end it, then run the cutover again.',
      );
    }
  } finally {
    clearTimeout(timer);
  }
  return (Date.now() - t0) / 1000;
}

/** RESUME the database; one that is not paused is fine. A fresh session: the paused one may be busy with PAUSE. */
export async function resume(c: pg.Client | ConnInfo, database: string): Promise<void> {
  const own = 'query' in c ? null : await adminSession(c);
  const s = own ?? (c as pg.Client);
  try {
    await s.query(`RESUME ${ident(database)}`).catch((e: Error) => {
      if (!/not paused/i.test(e.message)) throw e;
    });
  } finally {
    await own?.end().catch(() => undefined);
  }
}

/** Point the database's entry at the target in the file (written whole, then renamed), RELOAD, and check PgBouncer took it. */
export async function pointAtTarget(c: pg.Client, p: Pool, target: ConnInfo): Promise<void> {
  const before = readFileSync(p.ini, 'utf8');
  const after = pointEntry(before, p.database, { host: target.host, port: target.port, dbname: target.database });
  // Whole or not at all (a new file renamed over it), with the owner and mode PgBouncer reads it by;
  // where pgrelocate may not give the new file that owner, the file is rewritten in place.
  const st = statSync(p.ini);
  const tmp = `${p.ini}.pgrelocate`;
  try {
    writeFileSync(tmp, after, { mode: st.mode & 0o777 });
    chownSync(tmp, st.uid, st.gid);
    renameSync(tmp, p.ini);
  } catch {
    rmSync(tmp, { force: true });
    writeFileSync(p.ini, after);
  }
  await c.query('RELOAD');
  const now = await poolEntry(c, p.database);
  if (!now || now.database !== target.database || now.port !== target.port)
    throw new PgrelocateError(
      'pgbouncer-failed',
      `PgBouncer did not take the new entry for "${p.database}" after RELOAD (it shows ${now ? `${now.host}:${now.port}/${now.database}` : 'none'}).`,
      `Check PgBouncer's log; the file ${p.ini} points at the target.`,
    );
}

/** A name as PgBouncer's admin console takes it (an identifier; quoted when it must be). */
function ident(name: string): string {
  return /^[a-z_][a-z0-9_]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}
