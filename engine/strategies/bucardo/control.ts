/**
 * Driving a real Bucardo (Debian's 5.6): its control database on a server
 * pgrelocate is given (`--bucardo-url`, a superuser on a PostgreSQL with PL/Perl,
 * on the worker or the local machine), and the `bucardo` command.
 *
 * Bucardo has one control database per server (its schema file creates
 * `bucardo`), so the runs on one control server share it, its `bucardo` role
 * and one daemon: each run adds its own databases, relgroup and sync, and
 * takes out only those. They share one directory per control server (the
 * role's passfile, the daemon's pid files and log), and set up and take down
 * one at a time under an advisory lock. The role's password is set once, and
 * never while a daemon that depends on it answers.
 *
 * Passwords never reach argv: the `bucardo` role's password sits in the
 * private passfile (PGPASSFILE, HOME pointed there so Bucardo never writes to
 * the user's ~/.pgpass, /etc/bucardorc ignored), and the source's and
 * target's passwords are written into the control database's `bucardo.db`
 * table with SQL, not on a command line. The last run out stops the daemon,
 * drops the control database pgrelocate installed, and removes the directory.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import { connect, ident, redact, withClient, type ConnInfo } from '../../conn';
import { PgrelocateError } from '../../errors';
import { loadExeca, pgpassLines } from '../../tool-exec';

export const BUCARDO_BIN = process.env['PGRELOCATE_BUCARDO'] ?? 'bucardo';

/** `bucardo status <sync>` output ("Key : value" lines) as a map. Pure. */
export function parseStatus(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z][A-Za-z /-]*?)\s*:\s?(.*)$/.exec(line.trim());
    const key = m?.[1]?.trim();
    if (m && key && !out.has(key)) out.set(key, m[2]!.trim().replace(/^:\s*/, ''));
  }
  return out;
}

/** Where the runs on one control server keep its passfile, pid files and log: one directory per server. Pure. */
export function controlDir(workDir: string, control: { readonly host: string; readonly port: number }): string {
  return path.join(workDir, `pgrelocate-bucardo-${control.host.replace(/[^A-Za-z0-9.-]/g, '_')}-${control.port}`);
}

/** The advisory lock (in the control server's `postgres` database) under which runs set up and take down their parts. */
const CONTROL_LOCK = 0x7067_7262;

/** The comment that marks a control database pgrelocate installed: the last run out drops it. */
const INSTALLED_MARK = 'installed by pgrelocate';

/** Which syncs are pgrelocate's (named from their run id). */
const OUR_SYNCS = `name LIKE 'pgrelocate\\_%'`;

/** The names one run adds to the shared control database. */
export interface BucardoRunNames {
  readonly sourceDb: string;
  readonly targetDb: string;
  readonly relgroup: string;
  readonly sync: string;
}

export class BucardoControl {
  /** `dir`: the directory of the control server's runs (passfile, pid files, Bucardo's log); see controlDir. */
  constructor(
    readonly control: ConnInfo,
    readonly dir: string,
  ) {}

  private get passfile(): string {
    return path.join(this.dir, 'pgpass');
  }

  /** The `bucardo` role's connection to the control database. */
  private bucardoConn(): ConnInfo {
    return { ...this.control, user: 'bucardo', database: 'bucardo' };
  }

  private password(): string {
    return readFileSync(this.passfile, 'utf8').trim().split(':').slice(4).join(':');
  }

  /** The `bucardo` role, through the passfile, on one of the control server's databases. */
  private asBucardo(database: string): ConnInfo {
    return { ...this.bucardoConn(), database, password: this.password() };
  }

  /**
   * `fn` on a session of the control server's `postgres` database that holds
   * the control lock: two runs never set up or take down Bucardo at once.
   */
  private async locked<T>(conn: ConnInfo, fn: (c: pg.Client) => Promise<T>): Promise<T> {
    return withClient({ ...conn, database: 'postgres' }, 'Bucardo control server', async (c) => {
      await c.query(`SET lock_timeout = '120s'`);
      try {
        await c.query('SELECT pg_advisory_lock($1)', [CONTROL_LOCK]);
      } catch (e) {
        if ((e as { code?: string }).code !== '55P03') throw e;
        throw new PgrelocateError(
          'bucardo-control-busy',
          'Another pgrelocate run has held the Bucardo control server for 120 s while setting up or taking down its sync.',
          'Let that run finish (pgrelocate status), then retry.',
        );
      }
      return fn(c);
    });
  }

  /** Whether the passfile's password lets the `bucardo` role in (a run before this one set it). */
  private async passfileWorks(): Promise<boolean> {
    if (!existsSync(this.passfile)) return false;
    return withClient(this.asBucardo('postgres'), 'Bucardo control server', async () => true).catch(() => false);
  }

  /** Whether this directory's daemon is alive: its pid file names a live process. */
  daemonRunning(): boolean {
    try {
      const pid = Number(/\d+/.exec(readFileSync(path.join(this.dir, 'bucardo.mcp.pid'), 'utf8'))?.[0]);
      if (!pid) return false;
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Make sure the control database exists: a `bucardo` superuser whose
   * password only pgrelocate knows (kept in the passfile, set by the first run
   * on this server and reused by the next), then `bucardo install`. Returns
   * whether this run installed it.
   */
  async ensureInstalled(): Promise<boolean> {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    return this.locked(this.control, async (c) => {
      const su = await c.query<{ s: boolean }>(`SELECT rolsuper AS s FROM pg_roles WHERE rolname = current_user`);
      if (!su.rows[0]?.s)
        throw new PgrelocateError(
          'bucardo-control-privilege',
          'The Bucardo control server connection is not a superuser; `bucardo install` creates a superuser role and a database.',
          'Point --bucardo-url at a superuser of a PostgreSQL server dedicated to Bucardo (on the worker).',
        );
      const plperl = await c.query(`SELECT 1 FROM pg_available_extensions WHERE name = 'plperl'`);
      if (plperl.rowCount === 0)
        throw new PgrelocateError(
          'bucardo-no-plperl',
          'The Bucardo control server has no PL/Perl; the control database needs it.',
          'Install it on that server (Debian: apt-get install -y postgresql-15-plperl for PostgreSQL 15) and retry.',
        );
      const role = (await c.query(`SELECT 1 FROM pg_roles WHERE rolname = 'bucardo'`)).rowCount !== 0;
      const db = (await c.query(`SELECT 1 FROM pg_database WHERE datname = 'bucardo'`)).rowCount !== 0;
      if (!role || !(await this.passfileWorks())) {
        // A new password would cut off a daemon another run started with the old one.
        if (db && (await daemonAnswers({ ...this.control, database: 'bucardo' })))
          throw new PgrelocateError(
            'bucardo-control-in-use',
            `A Bucardo daemon is running on the control server ${this.control.host}:${this.control.port}, and ${this.dir} holds no password for its role; setting a new one would stop it from working.`,
            'Runs on one control server share its daemon: run pgrelocate with the same --work-dir as the run that started it, or give --bucardo-url another server.',
          );
        const password = randomBytes(18).toString('hex');
        await c.query(`${role ? 'ALTER' : 'CREATE'} ROLE bucardo SUPERUSER LOGIN PASSWORD '${password}'`);
        writeFileSync(this.passfile, pgpassLines([{ ...this.bucardoConn(), password }]), { mode: 0o600 });
      }
      if (db) return false;
      await this.run(
        [
          'install',
          '--batch',
          '--dbhost',
          this.control.host,
          '--dbport',
          String(this.control.port),
          '--dbuser',
          'bucardo',
          '--dbname',
          'postgres',
        ],
        { connectionFlags: false },
      );
      await c.query(`COMMENT ON DATABASE bucardo IS '${INSTALLED_MARK}'`);
      return true;
    });
  }

  /**
   * Start the daemon, or, when this server's daemon already runs (another
   * run's sync), have it load the syncs added since. A reload restarts each
   * sync's controller; a sync still making its first copy starts it again.
   */
  async startOrReload(reason: string): Promise<'started' | 'reloaded'> {
    if (this.daemonRunning()) {
      await this.run(['reload'], { timeoutMs: 60_000 });
      return 'reloaded';
    }
    await this.run(['start', '--logdest', this.dir, reason], { timeoutMs: 60_000 });
    return 'started';
  }

  /** Run `bucardo …` against the control database. Throws with Bucardo's message on a non-zero exit. */
  async run(
    args: readonly string[],
    opts: { readonly timeoutMs?: number; readonly connectionFlags?: boolean; readonly allowExit?: readonly number[] } = {},
  ): Promise<{ stdout: string; exitCode: number }> {
    if (!existsSync(this.passfile))
      throw new PgrelocateError(
        'bucardo-state-missing',
        `The Bucardo directory ${this.dir} is gone (its passfile is needed to reach the control database).`,
        'Run pgrelocate cleanup, then sync again.',
      );
    const flags =
      opts.connectionFlags === false
        ? []
        : ['--dbhost', this.control.host, '--dbport', String(this.control.port), '--dbuser', 'bucardo', '--dbname', 'bucardo'];
    const { execa } = await loadExeca();
    const r = await execa(BUCARDO_BIN, ['--no-bucardorc', ...flags, '--piddir', this.dir, ...args], {
      reject: false,
      stdin: 'ignore',
      // Bucardo writes bucardo.restart.reason.txt (and its logs) into its working directory: the control server's directory.
      cwd: this.dir,
      extendEnv: false,
      env: {
        PATH: process.env['PATH'] ?? '/usr/bin:/bin',
        HOME: this.dir,
        PGPASSFILE: this.passfile,
        LC_ALL: 'C.UTF-8',
        // Bucardo copies rows as text. Before 12 a server prints a float with 15 digits unless asked for more,
        // which drops precision (1/3.0 prints as 0.333333333333333); every session of the daemon asks, as pg_dump does.
        PGOPTIONS: '-c extra_float_digits=3',
      },
      ...(opts.timeoutMs ? { timeout: opts.timeoutMs } : {}),
    });
    const exitCode = r.exitCode ?? -1;
    if (exitCode !== 0 && !(opts.allowExit ?? []).includes(exitCode)) {
      if (r.code === 'ENOENT')
        throw new PgrelocateError(
          'bucardo-missing',
          'The bucardo command is not installed here.',
          'apt-get install -y bucardo (Debian), then retry.',
        );
      throw new PgrelocateError(
        'bucardo-failed',
        `bucardo ${args.slice(0, 2).join(' ')} failed (exit ${exitCode}): ${redact(`${String(r.stdout)}\n${String(r.stderr)}`)
          .trim()
          .split('\n')
          .slice(-4)
          .join(' ')}`,
        `Read Bucardo's log in ${this.dir}; fix the cause and rerun the pgrelocate command.`,
      );
    }
    return { stdout: String(r.stdout), exitCode };
  }

  /** A session on the control database, as the `bucardo` role. */
  async sql<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
    const c = await connect(this.asBucardo('bucardo'), 'Bucardo control database');
    try {
      return await fn(c);
    } finally {
      await c.end().catch(() => undefined);
    }
  }

  /**
   * Kick a sync and wait for a run of it to finish, the way `bucardo kick`
   * does (NOTIFY bucardo_kick_sync_<sync>, LISTEN bucardo_syncdone_<sync>) but
   * woken by the notification instead of polling every second. `runs: 2`
   * waits for two completions: the first may be a run that was already going
   * when the kick came; the second started after it. Resolves to how it ended.
   */
  async kick(sync: string, timeoutMs: number, runs = 1): Promise<'done' | 'killed' | 'timeout'> {
    return this.sql(async (c) => {
      const done = `bucardo_syncdone_${sync}`;
      const killed = `bucardo_synckill_${sync}`;
      await c.query(`LISTEN ${ident(done)}`);
      await c.query(`LISTEN ${ident(killed)}`);
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)));
      try {
        for (let i = 0; i < runs; i++) {
          const ended = new Promise<'done' | 'killed'>((resolve) => {
            const on = (n: pg.Notification): void => {
              if (n.channel !== done && n.channel !== killed) return;
              c.removeListener('notification', on);
              resolve(n.channel === done ? 'done' : 'killed');
            };
            c.on('notification', on);
          });
          // Kick again every second: a kick sent before the daemon listens is lost, and extra kicks only queue a run.
          const kick = (): Promise<unknown> => c.query(kickSql(sync));
          await kick();
          const again = setInterval(() => void kick().catch(() => undefined), 1000);
          const r = await Promise.race([ended, deadline]).finally(() => clearInterval(again));
          if (r !== 'done') return r;
        }
        return 'done';
      } finally {
        clearTimeout(timer);
      }
    });
  }

  /**
   * Take one run's part out of Bucardo: its sync, relgroup, tables and
   * databases are deleted from the control database, and the daemon, when it
   * carries other runs' syncs, is restarted on those. The last of pgrelocate's
   * runs on this server instead stops the daemon, drops the control database
   * if pgrelocate installed it (and the `bucardo` role, when the superuser is
   * given), and removes the directory. Returns what was removed.
   */
  async release(names: BucardoRunNames, installedByUs: boolean): Promise<string[]> {
    const removed: string[] = [];
    if (!existsSync(this.passfile)) {
      // Nothing can be reached without the password: end whatever Bucardo still works in the directory.
      const left = await endProcessesIn(this.dir, 0);
      if (left > 0) removed.push(`${left} Bucardo process(es) ended`);
      rmSync(this.dir, { recursive: true, force: true });
      return removed;
    }
    // As the given superuser; else as the `bucardo` superuser itself (which cannot drop its own role).
    const asAdmin = this.control.password !== undefined;
    return this.locked(asAdmin ? this.control : this.asBucardo('postgres'), async (c) => {
      const db = await c.query<{ mark: string | null }>(
        `SELECT shobj_description(oid, 'pg_database') AS mark FROM pg_database WHERE datname = 'bucardo'`,
      );
      // The other syncs on this control server, pgrelocate's and any others.
      const others =
        db.rowCount === 0
          ? { ours: 0, all: 0 }
          : await this.sql(async (b) => {
              const r = await b.query<{ ours: number; all: number }>(
                `SELECT count(*) FILTER (WHERE ${OUR_SYNCS})::int AS ours, count(*)::int AS all FROM bucardo.sync WHERE name <> $1`,
                [names.sync],
              );
              return r.rows[0]!;
            });
      const removeRows = async (): Promise<boolean> => {
        if (db.rowCount === 0 || (await this.sql((b) => removeRunRows(b, names))) === 0) return false;
        removed.push(`Bucardo sync ${names.sync} with its relgroup and databases (control database)`);
        return true;
      };
      const pidFile = path.join(this.dir, 'bucardo.mcp.pid');
      const stop = async (reason: string): Promise<void> => {
        if (existsSync(pidFile)) await this.run(['stop', reason], { timeoutMs: 60_000, allowExit: [1, 2] }).catch(() => undefined);
        // `bucardo stop` leaves a stop file in the directory for its processes to see; the VAC process
        // sleeps past it and, once the directory is gone, lives on. End every process still working there.
        const left = await endProcessesIn(this.dir);
        if (left > 0) removed.push(`${left} Bucardo process(es) ended`);
      };
      if (others.ours > 0) {
        // The daemon carries other runs' syncs. It keeps every sync's databases in memory and exits when its
        // health check finds one gone from the control database (seen: "Invalid database id"), so once this
        // run's rows are out it is restarted on what remains. A kick another run waits on meanwhile is lost
        // with it (that run's command then fails and can be rerun); a whole-cluster cutover takes its runs out
        // only after every database has switched.
        if ((await removeRows()) && (this.daemonRunning() || existsSync(pidFile))) {
          await stop('pgrelocate: one run out');
          await this.run(['start', '--logdest', this.dir, 'pgrelocate: the runs left'], { timeoutMs: 60_000 });
          removed.push(`Bucardo daemon restarted for the ${others.ours} other sync(s) on its control server`);
        }
        return removed;
      }
      if (this.daemonRunning() || existsSync(pidFile)) removed.push('Bucardo daemon stopped');
      await stop('pgrelocate cleanup');
      await removeRows();
      if (db.rowCount !== 0 && others.all === 0 && (installedByUs || db.rows[0]?.mark === INSTALLED_MARK)) {
        await c.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'bucardo' AND pid <> pg_backend_pid()`);
        await c.query('DROP DATABASE IF EXISTS bucardo');
        if (asAdmin) await c.query('DROP ROLE IF EXISTS bucardo');
        removed.push(`Bucardo control database${asAdmin ? ' and role' : ''} (control server)`);
      }
      rmSync(this.dir, { recursive: true, force: true });
      return removed;
    });
  }
}

/** The statement that asks the daemon for one run of a sync, as `bucardo kick` sends it. */
export const kickSql = (sync: string): string => `NOTIFY ${ident(`bucardo_kick_sync_${sync}`)}`;

/** Whether a Bucardo daemon answers on the control database (its MCP pongs a ping within 2 s). */
async function daemonAnswers(conn: ConnInfo): Promise<boolean> {
  return withClient(conn, 'Bucardo control database', async (c) => {
    await c.query('LISTEN bucardo_mcp_pong');
    const pong = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 2000);
      c.once('notification', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    await c.query('NOTIFY bucardo_mcp_ping');
    return pong;
  });
}

/**
 * Delete one run's rows from the control database in one transaction, in the
 * order its foreign keys need (custom columns and names and the sync's runs
 * restrict, the rest cascade). Returns how many syncs went (0 or 1).
 */
async function removeRunRows(c: pg.Client, n: BucardoRunNames): Promise<number> {
  const dbs = [n.sourceDb, n.targetDb];
  await c.query('BEGIN');
  try {
    const sync = await c.query<{ dbs: string | null }>(`SELECT dbs FROM bucardo.sync WHERE name = $1`, [n.sync]);
    const goats = `SELECT id FROM bucardo.goat WHERE db = ANY($1::text[])`;
    for (const t of ['customcols', 'customname'])
      await c.query(`DELETE FROM bucardo.${t} WHERE sync = $2 OR db = ANY($1::text[]) OR goat IN (${goats})`, [dbs, n.sync]);
    await c.query(`DELETE FROM bucardo.syncrun WHERE sync = $1`, [n.sync]);
    await c.query(`DELETE FROM bucardo.sync WHERE name = $1`, [n.sync]);
    const group = sync.rows[0]?.dbs;
    if (group)
      await c.query(`DELETE FROM bucardo.dbgroup WHERE name = $1 AND NOT EXISTS (SELECT 1 FROM bucardo.sync WHERE dbs = $1)`, [group]);
    await c.query(`DELETE FROM bucardo.herd WHERE name = $1 AND NOT EXISTS (SELECT 1 FROM bucardo.sync WHERE herd = $1)`, [n.relgroup]);
    await c.query(`DELETE FROM bucardo.goat WHERE db = ANY($1::text[])`, [dbs]);
    await c.query(`DELETE FROM bucardo.db WHERE name = ANY($1::text[])`, [dbs]);
    await c.query('COMMIT');
    return sync.rowCount ?? 0;
  } catch (e) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
}

/** Pids of the processes whose working directory is `dir` (Linux /proc). */
function processesIn(dir: string): number[] {
  const out: number[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cwd = readlinkSync(`/proc/${e}/cwd`).replace(/ \(deleted\)$/, '');
      if (cwd === dir) out.push(Number(e));
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

/**
 * Wait for the processes working in `dir` (a run's Bucardo) to exit, then
 * TERM and KILL what is left; returns how many had to be signalled.
 */
export async function endProcessesIn(dir: string, graceMs = 5_000): Promise<number> {
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  for (const deadline = Date.now() + graceMs; processesIn(dir).length > 0 && Date.now() < deadline;) await sleep(100);
  const left = processesIn(dir);
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    const pids = processesIn(dir);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
    for (const deadline = Date.now() + 3_000; processesIn(dir).length > 0 && Date.now() < deadline;) await sleep(100);
  }
  return left.length;
}
