/**
 * One pgrelocate at a time on a target database. A command that changes the run
 * holds a session-level advisory lock in the target for as long as it works:
 * a second one is refused, naming who holds it and since when, instead of
 * "resuming" a live run (seen: it dropped the first one's slot and truncated
 * tables the first had filled). The server drops the lock with the session,
 * so a killed pgrelocate never leaves it behind, and `status` reads the lock to
 * tell a live run from a dead one.
 */
import os from 'node:os';
import type pg from 'pg';
import { connect, describe, type ConnInfo } from './conn';
import { PgrelocateError } from './errors';

/** The advisory lock's two keys: 'pgfe' and a version, so nothing else is likely to share it. */
const KEY = [0x70676665, 1] as const;

/** Who holds the lock, as `status` and the refusal show it. */
export interface LockHolder {
  /** pgrelocate's application_name: command, pid and host. */
  readonly holder: string;
  /** When that session connected. */
  readonly since: string;
  /** Its server process id (pg_terminate_backend ends it, and the lock with it). */
  readonly pid: number;
}

const HOLDER_SQL = `SELECT a.application_name AS holder, a.backend_start::text AS since, a.pid
   FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
  WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid AND l.objsubid = 2
    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`;

/** The session holding the run lock on this target, or null when none does. */
export async function lockHolder(client: pg.Client): Promise<LockHolder | null> {
  const r = await client.query<LockHolder>(HOLDER_SQL, [KEY[0], KEY[1]]);
  return r.rows[0] ?? null;
}

/** application_name of the lock's session: what a second pgrelocate shows. Pure (up to 63 bytes, as the server keeps). */
export function holderName(command: string, pid: number, host: string): string {
  return `pgrelocate ${command} pid ${pid} on ${host}`.slice(0, 63);
}

/** Targets whose lock this process holds: a command that calls another (migrate → sync → cutover) re-enters. */
const held = new Set<string>();

/**
 * Run `fn` holding the target's run lock; refuse with `run-busy` when another
 * process holds it.
 */
export async function withRunLock<T>(target: ConnInfo, command: string, fn: () => Promise<T>): Promise<T> {
  const key = describe(target);
  if (held.has(key)) return fn();
  const client = await connect(target, 'target', { application_name: holderName(command, process.pid, os.hostname()) });
  try {
    const got = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [KEY[0], KEY[1]]);
    if (!got.rows[0]?.ok) {
      const h = await lockHolder(client).catch(() => null);
      throw new PgrelocateError(
        'run-busy',
        `Another pgrelocate is working on this target${h ? ` (${h.holder}, connected since ${h.since})` : ''}; this ${command} changed nothing`,
        `Wait for it to end (pgrelocate status shows its progress), or stop that process${h ? ` (or SELECT pg_terminate_backend(${h.pid}) on the target)` : ''}; its lock ends with it.`,
      );
    }
  } catch (e) {
    await client.end().catch(() => undefined);
    throw e;
  }
  held.add(key);
  try {
    return await fn();
  } finally {
    held.delete(key);
    // Ending the session releases the lock.
    await client.end().catch(() => undefined);
  }
}
