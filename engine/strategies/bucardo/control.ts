/**
 * Driving a real Bucardo (Debian's 5.6): its control database on a server
 * pgrelocate is given (`--bucardo-url`, a superuser on a PostgreSQL with PL/Perl,
 * on the worker or the local machine), and the `bucardo` command.
 *
 * Passwords never reach argv: the `bucardo` role's password sits in a private
 * passfile in the run's directory (PGPASSFILE, HOME pointed there so Bucardo
 * never writes to the user's ~/.pgpass, /etc/bucardorc ignored), and the
 * source's and target's passwords are written into the control database's
 * `bucardo.db` table with SQL, not on a command line. The control database,
 * the directory and the daemon go at cleanup.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import type pg from 'pg';
import { connect, ident, redact, withClient, type ConnInfo } from '../../conn';
import { PgrelocateError } from '../../errors';
import { pgpassLines } from '../../tool-exec';

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

export class BucardoControl {
  /** `dir`: the run's private directory (passfile, pid files, Bucardo's log). */
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

  /**
   * Make sure the control database exists: a `bucardo` superuser with a fresh
   * random password (kept in the run's passfile), then `bucardo install`.
   * Returns whether pgrelocate installed it (then cleanup drops it).
   */
  async ensureInstalled(): Promise<boolean> {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    return withClient(this.control, 'Bucardo control server', async (c) => {
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
      const password = randomBytes(18).toString('hex');
      const role = await c.query(`SELECT 1 FROM pg_roles WHERE rolname = 'bucardo'`);
      // The control server is Bucardo's alone: pgrelocate sets the role's password to one only it knows.
      await c.query(`${role.rowCount === 0 ? 'CREATE' : 'ALTER'} ROLE bucardo SUPERUSER LOGIN PASSWORD '${password}'`);
      writeFileSync(this.passfile, pgpassLines([{ ...this.bucardoConn(), password }]), { mode: 0o600 });
      const db = await c.query(`SELECT 1 FROM pg_database WHERE datname = 'bucardo'`);
      if ((db.rowCount ?? 0) > 0) return false;
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
      return true;
    });
  }

  /** Run `bucardo …` against the control database. Throws with Bucardo's message on a non-zero exit. */
  async run(
    args: readonly string[],
    opts: { readonly timeoutMs?: number; readonly connectionFlags?: boolean; readonly allowExit?: readonly number[] } = {},
  ): Promise<{ stdout: string; exitCode: number }> {
    if (!existsSync(this.passfile))
      throw new PgrelocateError(
        'bucardo-state-missing',
        `The run's Bucardo directory ${this.dir} is gone (its passfile is needed to reach the control database).`,
        'Run pgrelocate cleanup, then sync again.',
      );
    const flags =
      opts.connectionFlags === false
        ? []
        : ['--dbhost', this.control.host, '--dbport', String(this.control.port), '--dbuser', 'bucardo', '--dbname', 'bucardo'];
    const r = await execa(BUCARDO_BIN, ['--no-bucardorc', ...flags, '--piddir', this.dir, ...args], {
      reject: false,
      stdin: 'ignore',
      // Bucardo writes bucardo.restart.reason.txt (and its logs) into its working directory: the run's directory.
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
    const password = readFileSync(this.passfile, 'utf8').trim().split(':').slice(4).join(':');
    const c = await connect({ ...this.bucardoConn(), password }, 'Bucardo control database');
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
          const kick = (): Promise<unknown> => c.query(`NOTIFY ${ident(`bucardo_kick_sync_${sync}`)}`);
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

  /** Stop the daemon (if running), drop the control database and role if pgrelocate installed them, remove the directory. */
  async destroy(installedByUs: boolean): Promise<string[]> {
    const removed: string[] = [];
    if (existsSync(this.passfile)) {
      await this.run(['stop', 'pgrelocate cleanup'], { timeoutMs: 60_000, allowExit: [1, 2] }).catch(() => undefined);
      removed.push('Bucardo daemon stopped');
    }
    // `bucardo stop` leaves a stop file in the run's directory for its processes to see; the VAC process
    // sleeps past it and, once the directory is gone, lives on. End every process still working there.
    const left = await endProcessesIn(this.dir);
    if (left > 0) removed.push(`${left} Bucardo process(es) ended`);
    if (installedByUs && (this.control.password !== undefined || existsSync(this.passfile))) {
      // As the given superuser; else as the `bucardo` superuser itself (which cannot drop its own role).
      const asAdmin = this.control.password !== undefined;
      const conn = asAdmin
        ? { ...this.control, database: 'postgres' }
        : {
            ...this.bucardoConn(),
            database: 'postgres',
            password: readFileSync(this.passfile, 'utf8').trim().split(':').slice(4).join(':'),
          };
      await withClient(conn, 'Bucardo control server', async (c) => {
        await c.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'bucardo' AND pid <> pg_backend_pid()`);
        await c.query('DROP DATABASE IF EXISTS bucardo');
        if (asAdmin) await c.query('DROP ROLE IF EXISTS bucardo');
      });
      removed.push(`Bucardo control database${asAdmin ? ' and role' : ''} (control server)`);
    }
    rmSync(this.dir, { recursive: true, force: true });
    return removed;
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
