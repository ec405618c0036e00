/**
 * The native subscription on the target, attached to the slot the copy
 * started from (`create_slot = false`, `copy_data = false`), and the lag
 * between the source's WAL and what the target has applied.
 */
import { opt } from '../option-names';
import type pg from 'pg';
import { describe, literal, redact, type ConnInfo } from '../conn';
import { PgrelocateError } from '../errors';
import type { LogicalNames } from './snapshot';

/** A libpq key/value connection string (what CREATE SUBSCRIPTION takes). Contains the password. */
export function conninfo(c: ConnInfo): string {
  const q = (v: string): string => `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  const parts: [string, string | undefined][] = [
    ['host', c.host],
    ['port', String(c.port)],
    ['user', c.user],
    ['password', c.password],
    ['dbname', c.database],
    ['sslmode', c.sslmode],
    ['application_name', 'pgrelocate-subscription'],
  ];
  for (const [k, v] of Object.entries(c.params)) if (k !== 'application_name') parts.push([k, v]);
  return parts
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${q(v!)}`)
    .join(' ');
}

export function createSubscriptionSql(names: LogicalNames, sourceForTarget: ConnInfo): string {
  return (
    `CREATE SUBSCRIPTION ${names.subscription} CONNECTION ${literal(conninfo(sourceForTarget))} PUBLICATION ${names.publication} ` +
    `WITH (create_slot = false, slot_name = '${names.slot}', copy_data = false, enabled = true)`
  );
}

/**
 * Create the subscription. Its statement carries the source's password, and a
 * server logs a failed statement whole (log_min_error_statement): where this
 * user may, the session logs no statement while it runs. A failure (the target
 * cannot reach the source) says what to fix, without the password.
 */
export async function createSubscription(c: pg.Client, names: LogicalNames, sourceForTarget: ConnInfo): Promise<void> {
  const quieted: string[] = [];
  for (const [name, value] of [
    ['log_min_error_statement', 'panic'],
    ['log_statement', 'none'],
  ] as const) {
    // Superuser, or a role granted SET on the parameter (15+); otherwise the server's settings stand.
    if (
      await c.query(`SET ${name} = ${value}`).then(
        () => true,
        () => false,
      )
    )
      quieted.push(name);
  }
  try {
    await c.query(createSubscriptionSql(names, sourceForTarget));
  } catch (e) {
    const msg = redact((e as Error).message ?? String(e));
    throw new PgrelocateError(
      'subscribe-failed',
      `The target could not subscribe to the source at ${describe(sourceForTarget)}: ${msg}`,
      `The target server itself connects to the source: let the source admit the target's address (security group, pg_hba.conf), or give the address it reaches the source by with ${opt('sourceUrlFromTarget')}; then rerun sync (it resumes).`,
    );
  } finally {
    for (const name of quieted) await c.query(`RESET ${name}`).catch(() => undefined);
  }
}

export interface Lag {
  /** WAL bytes the source has written that the target has not confirmed. */
  readonly bytes: number;
  /** Seconds since the target last confirmed a position, while behind; 0 when caught up. */
  readonly seconds: number;
  readonly slotActive: boolean;
  readonly confirmedLsn: string | null;
  readonly currentLsn: string;
}

export async function sourceLag(source: pg.Client, names: LogicalNames): Promise<Lag | null> {
  const r = await source.query<{ bytes: string | null; active: boolean; confirmed: string | null; current: string }>(
    `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint::text AS bytes, active,
            confirmed_flush_lsn::text AS confirmed, pg_current_wal_lsn()::text AS current
       FROM pg_replication_slots WHERE slot_name = $1`,
    [names.slot],
  );
  const row = r.rows[0];
  if (!row) return null;
  return {
    bytes: Math.max(0, Number(row.bytes ?? 0)),
    seconds: 0,
    slotActive: row.active,
    confirmedLsn: row.confirmed,
    currentLsn: row.current,
  };
}

/** Seconds since the subscription's last reported position (target side), when behind. */
export async function targetLagSeconds(target: pg.Client, names: LogicalNames): Promise<number | null> {
  const r = await target.query<{ s: number | null }>(
    `SELECT extract(epoch FROM now() - max(latest_end_time))::float8 AS s FROM pg_stat_subscription WHERE subname = $1`,
    [names.subscription],
  );
  return r.rows[0]?.s ?? null;
}

/** Wait until the slot's confirmed position reaches `lsn` (the target has applied and flushed it). */
export async function waitForLsn(source: pg.Client, names: LogicalNames, lsn: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const r = await source.query<{ ok: boolean | null }>(
      `SELECT confirmed_flush_lsn >= $2::pg_lsn AS ok FROM pg_replication_slots WHERE slot_name = $1`,
      [names.slot, lsn],
    );
    if (r.rows[0]?.ok) return true;
    await new Promise((res) => setTimeout(res, 50));
  }
  return false;
}
