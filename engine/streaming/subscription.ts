/**
 * The native subscription on the target, attached to the slot the copy
 * started from (`create_slot = false`, `copy_data = false`), and the lag
 * between the source's WAL and what the target has applied.
 */
import { opt } from '../option-names';
import type pg from 'pg';
import { describe, literal, redact, serverVersionNum, withClient, type ConnInfo } from '../conn';
import { PgrelocateError } from '../errors';
import type { Emit, Step } from '../runner';
import type { CutoverContext, StatusDetail } from './hooks';
import type { StreamingMeta } from './options';
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

export function createSubscriptionSql(names: LogicalNames, sourceForTarget: ConnInfo, enabled = true): string {
  return (
    `CREATE SUBSCRIPTION ${names.subscription} CONNECTION ${literal(conninfo(sourceForTarget))} PUBLICATION ${names.publication} ` +
    `WITH (create_slot = false, slot_name = '${names.slot}', copy_data = false, enabled = ${enabled})`
  );
}

/**
 * Create the subscription. Its statement carries the source's password, and a
 * server logs a failed statement whole (log_min_error_statement): where this
 * user may, the session logs no statement while it runs. A failure (the target
 * cannot reach the source) says what to fix, without the password.
 */
export async function createSubscription(c: pg.Client, names: LogicalNames, sourceForTarget: ConnInfo, enabled = true): Promise<void> {
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
    await c.query(createSubscriptionSql(names, sourceForTarget, enabled));
  } catch (e) {
    const msg = redact((e as Error).message ?? String(e));
    throw new PgrelocateError(
      'subscribe-failed',
      `The target could not subscribe to the source at ${describe(sourceForTarget)}: ${msg}`,
      `Let the source admit the target server's address (security group, pg_hba.conf), or pass the address it reaches the source by with ${opt('sourceUrlFromTarget')}; then rerun sync.`,
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

/**
 * Wait until the slot's confirmed position reaches `lsn` (the target has
 * applied and flushed it). A database nothing writes to (a quiet one of
 * several, or one the pre-hook put in maintenance) gives its subscriber
 * nothing to confirm: the walsender decodes other databases' WAL past `lsn`
 * and the subscriber's feedback waited for its status interval (measured: 8 s).
 * So after 100 ms, and each second after, a transactional logical message is
 * written in this database: a commit the subscriber applies and confirms at
 * once. Best effort: without the right to emit one, the wait is as before.
 */
export async function waitForLsn(source: pg.Client, names: LogicalNames, lsn: string, timeoutMs: number): Promise<boolean> {
  const started = Date.now();
  const deadline = started + timeoutMs;
  let nudged = 0;
  while (Date.now() < deadline) {
    const r = await source.query<{ ok: boolean | null }>(
      `SELECT confirmed_flush_lsn >= $2::pg_lsn AS ok FROM pg_replication_slots WHERE slot_name = $1`,
      [names.slot, lsn],
    );
    if (r.rows[0]?.ok) return true;
    if (Date.now() - started > 100 && Date.now() - nudged > 1000) {
      nudged = Date.now();
      await source.query(`SELECT pg_logical_emit_message(true, 'pgrelocate', 'final lsn')`).catch(() => undefined);
    }
    await new Promise((res) => setTimeout(res, 20));
  }
  return false;
}

/** Poll the slot until the target is at most `maxBytes` behind (or time runs out). */
export async function waitForLag(
  source: ConnInfo,
  names: LogicalNames,
  maxBytes: number,
  timeoutSeconds: number,
  emit: Emit,
): Promise<Lag> {
  return withClient(source, 'source', async (c) => {
    const deadline = Date.now() + timeoutSeconds * 1000;
    let lastLog = 0;
    for (;;) {
      const lag = await sourceLag(c, names);
      if (!lag)
        throw new PgrelocateError(
          'slot-missing',
          `Replication slot ${names.slot} is gone from the source.`,
          'Run pgrelocate cleanup, then sync again.',
        );
      if ((lag.bytes <= maxBytes && lag.slotActive) || Date.now() > deadline) return lag;
      if (Date.now() - lastLog > 2000) {
        lastLog = Date.now();
        emit({
          type: 'log',
          level: 'info',
          message: `catching up: ${lag.bytes} bytes behind${lag.slotActive ? '' : ' (subscription not connected yet)'}`,
        });
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  });
}

/** The lag gate of the strategies that stream through a slot: fence only once the target is within --max-lag. */
export async function slotLagGate(c: CutoverContext, emit: Emit): Promise<Lag> {
  const lag = await waitForLag(c.source, c.meta.names, c.opts.maxLagBytes, c.opts.catchUpTimeout, emit);
  if (lag.bytes > c.opts.maxLagBytes)
    throw new PgrelocateError(
      'lag-too-high',
      `The target is ${lag.bytes} bytes behind (threshold ${c.opts.maxLagBytes}); nothing was fenced.`,
      `Wait for catch-up (pgrelocate status) or raise ${opt('maxLag')}.`,
    );
  return lag;
}

/** One look at a native subscription's apply worker: its pid (null when none runs) and, on 15+, its error count. */
async function applySample(
  dst: pg.Client,
  subscription: string,
  hasStats: boolean,
): Promise<{ pid: number | null; errors: number | null; enabled: boolean }> {
  const r = await dst.query<{ pid: number | null; enabled: boolean; errors: string | null }>(
    `SELECT (SELECT pid FROM pg_stat_subscription w WHERE w.subid = s.oid AND w.relid IS NULL AND w.pid IS NOT NULL LIMIT 1) AS pid,
            s.subenabled AS enabled,
            ${hasStats ? `(SELECT apply_error_count + sync_error_count FROM pg_stat_subscription_stats t WHERE t.subid = s.oid)::text` : 'NULL'} AS errors
       FROM pg_subscription s WHERE s.subname = $1 AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [subscription],
  );
  const row = r.rows[0];
  return { pid: row?.pid ?? null, errors: row?.errors == null ? null : Number(row.errors), enabled: row?.enabled ?? false };
}

/**
 * The apply worker must be healthy before anything is fenced: a worker that
 * fails and restarts every few seconds (a row the target already has, a
 * replica identity that cannot match) leaves the slot briefly active and the
 * lag small, so the lag alone would let a cutover fence the source for a final
 * LSN that is never applied. Healthy: the same worker running for `windowMs`
 * in a row with (15+) no new apply error. A worker restarting after a fix
 * (PostgreSQL retries every wal_retrieve_retry_interval, 5 s) gets up to
 * `maxMs` to get there.
 */
export interface ApplyGateOptions {
  readonly windowMs?: number;
  readonly maxMs?: number;
  readonly everyMs?: number;
  /** What the catalogs can name as the cause (the error itself is only in the server log). */
  readonly diagnose?: () => Promise<string[]>;
  /** One look at the apply worker; default: a native subscription's. */
  readonly sample?: () => Promise<ApplySample>;
  /** The command to run again once fixed (default: the cutover). */
  readonly retry?: string;
  /** The server the subscription applies into, as the messages name it (default: the target). */
  readonly side?: string;
}

export interface ApplySample {
  /** The apply worker's pid, null when none runs. */
  readonly pid: number | null;
  /** Apply errors so far, where the server counts them (15+ native), else null. */
  readonly errors: number | null;
  readonly enabled: boolean;
}

/** One look at pglogical's apply worker: running only while its subscription reports `replicating`. */
export function pglogicalApplySample(dst: pg.Client, subscription: string): () => Promise<ApplySample> {
  return async () => {
    const r = await dst.query<{ status: string | null; pid: number | null }>(
      `SELECT (SELECT status FROM pglogical.show_subscription_status($1)) AS status,
              (SELECT a.pid FROM pg_stat_activity a
                WHERE a.backend_type = 'pglogical apply ' || (SELECT oid FROM pg_database WHERE datname = current_database()) || ':'
                                       || (SELECT sub_id FROM pglogical.subscription WHERE sub_name = $1) LIMIT 1) AS pid`,
      [subscription],
    );
    const row = r.rows[0];
    return { pid: row?.status === 'replicating' ? (row.pid ?? null) : null, errors: null, enabled: row?.status !== 'disabled' };
  };
}

export async function applyHealthGate(dst: pg.Client, subscription: string, o: ApplyGateOptions = {}): Promise<void> {
  const { windowMs = 2000, maxMs = 15_000, everyMs = 200, diagnose = async () => [], retry = 'the cutover', side = 'the target' } = o;
  const started = Date.now();
  // pg_stat_subscription_stats exists from 15 on: asked once, not at every sample.
  const hasStats = o.sample ? false : (await serverVersionNum(dst)) >= 150000;
  const sample = o.sample ?? (() => applySample(dst, subscription, hasStats));
  let streak: { pid: number; errors: number | null; since: number } | null = null;
  const seen = { notRunning: 0, restarts: 0, errors: 0, disabled: false, total: null as number | null };
  let lastPid: number | null = null;
  for (;;) {
    const now = await sample();
    seen.total = now.errors;
    if (!now.enabled) seen.disabled = true;
    if (now.pid === null) seen.notRunning++;
    else if (lastPid !== null && now.pid !== lastPid) seen.restarts++;
    if (now.enabled && now.pid !== null && streak && streak.pid === now.pid && (streak.errors ?? 0) === (now.errors ?? 0)) {
      if (Date.now() - streak.since >= windowMs) return;
    } else {
      if (streak && now.errors !== null && streak.errors !== null && now.errors > streak.errors) seen.errors += now.errors - streak.errors;
      streak = now.enabled && now.pid !== null ? { pid: now.pid, errors: now.errors, since: Date.now() } : null;
    }
    lastPid = now.pid ?? lastPid;
    if (Date.now() - started >= maxMs) break;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  const window = `${maxMs / 1000}s`;
  const why = seen.disabled
    ? 'the subscription is disabled'
    : [
        seen.notRunning ? `its apply worker was not running at times during ${window} (it fails and restarts)` : '',
        seen.restarts ? `it restarted ${seen.restarts} time(s)` : '',
        seen.errors ? `it logged ${seen.errors} apply error(s)` : '',
      ]
        .filter(Boolean)
        .join(', ') || `its apply worker did not run steadily for ${windowMs / 1000}s within ${window}`;
  // The apply error itself is only in the target's server log: read there where the role may; the catalogs show a table whose columns differ.
  const Side = side[0]!.toUpperCase() + side.slice(1);
  // One after the other: both use the target's session.
  const causes = await diagnose().catch(() => []);
  const logged = await lastApplyError(dst).catch(() => null);
  throw new PgrelocateError(
    'apply-failing',
    `${Side} is not applying changes: subscription ${subscription}: ${why}${seen.total ? ` (${seen.total} apply errors so far)` : ''}; nothing was fenced.` +
      `${logged ? `\n  ${Side}'s log: ${logged}` : ''}${causes.length ? `\n  Likely cause: ${causes.slice(0, 10).join('; ')}` : ''}`,
    logged
      ? `Fix what the error names on ${side} (a row it already has, a table the replica identity cannot match, a missing column), and run ${retry} again once pgrelocate status shows the lag falling.`
      : `Read the server log of ${side} for the apply error (on RDS: the console's Logs, or aws rds download-db-log-file-portion; pgrelocate reads it itself as a superuser or a member of pg_monitor and pg_read_server_files), fix the table it names (a row it already has, a table the replica identity cannot match, a missing column), and run ${retry} again once pgrelocate status shows the lag falling.`,
  );
}

/** How much of the end of the server's log is read for the apply error. */
const LOG_TAIL_BYTES = 1024 * 1024;

/**
 * The last error of a logical replication apply worker in the target's own
 * log, as `ERROR … (DETAIL …; CONTEXT …)`: where the server writes its log
 * through the collector and the role may read it (a superuser, or pg_monitor
 * with pg_read_server_files). Null elsewhere — a managed service keeps its log
 * behind its own API.
 */
export async function lastApplyError(dst: pg.Client): Promise<string | null> {
  const file = (await dst.query<{ f: string | null }>(`SELECT pg_current_logfile() AS f`)).rows[0]?.f;
  if (!file) return null;
  const r = await dst.query<{ b: Buffer }>(`SELECT pg_read_binary_file($1, greatest(0, (pg_stat_file($1)).size - $2), $2) AS b`, [
    file,
    LOG_TAIL_BYTES,
  ]);
  return applyErrorIn(r.rows[0]!.b.toString('utf8'));
}

/**
 * The last apply error in a stretch of server log (text format): the ERROR
 * line before a CONTEXT that names remote data being applied (14+), or an
 * ERROR that names logical replication itself (a missing column, a relation
 * the publication has and the target lacks). Pure.
 */
export function applyErrorIn(log: string): string | null {
  const lines = log.split('\n');
  const message = (line: string, tag: string): string => line.slice(line.indexOf(tag) + tag.length).trim();
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!;
    const isError = line.includes('ERROR:');
    // Native (14+): "processing remote data …"; pglogical: "apply INSERT from remote relation …".
    const applying = line.includes('CONTEXT:') && /processing remote data|from remote relation/.test(line);
    if (!applying && !(isError && /logical replication/.test(line))) continue;
    let at = i;
    while (at >= 0 && !lines[at]!.includes('ERROR:')) at--;
    if (at < 0 || i - at > 4) continue;
    const detail = lines.slice(at + 1, at + 4).find((l) => l.includes('DETAIL:'));
    const parts = [message(lines[at]!, 'ERROR:'), detail ? message(detail, 'DETAIL:') : '', applying ? message(line, 'CONTEXT:') : ''];
    return parts.filter(Boolean).join('; ');
  }
  return null;
}

/**
 * Published tables whose columns differ between source and target — a column
 * added on the source after the schema was copied stops the apply on its first
 * change to that table. Named as `table: what differs`.
 */
export async function columnDrift(src: pg.Client, dst: pg.Client, publication: string): Promise<string[]> {
  const tables = (
    await src.query<{ q: string }>(
      `SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) AS q FROM pg_publication_tables WHERE pubname = $1`,
      [publication],
    )
  ).rows.map((r) => r.q);
  return columnDriftOf(src, dst, tables);
}

/** The same for pglogical: the tables of its replication sets on the provider. */
export async function pglogicalColumnDrift(src: pg.Client, dst: pg.Client): Promise<string[]> {
  const tables = (
    await src.query<{ q: string }>(
      `SELECT DISTINCT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS q
         FROM pglogical.replication_set_table r JOIN pg_class c ON c.oid = r.set_reloid JOIN pg_namespace n ON n.oid = c.relnamespace`,
    )
  ).rows.map((r) => r.q);
  return columnDriftOf(src, dst, tables);
}

async function columnDriftOf(src: pg.Client, dst: pg.Client, tables: readonly string[]): Promise<string[]> {
  if (tables.length === 0) return [];
  const columns = async (c: pg.Client): Promise<Map<string, Map<string, { type: string; required: boolean }>>> => {
    const v = await serverVersionNum(c);
    const r = await c.query<{ t: string; a: string; type: string; required: boolean }>(
      `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS t, a.attname AS a, format_type(a.atttypid, a.atttypmod) AS type,
              (a.attnotnull AND NOT a.atthasdef) AS required
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE quote_ident(n.nspname) || '.' || quote_ident(c.relname) = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped
          ${v >= 120000 ? "AND a.attgenerated = ''" : ''}`,
      [tables],
    );
    const m = new Map<string, Map<string, { type: string; required: boolean }>>();
    for (const x of r.rows) {
      if (!m.has(x.t)) m.set(x.t, new Map());
      m.get(x.t)!.set(x.a, { type: x.type, required: x.required });
    }
    return m;
  };
  const [s, d] = await Promise.all([columns(src), columns(dst)]);
  const out: string[] = [];
  for (const t of tables) {
    const sc = s.get(t) ?? new Map<string, { type: string; required: boolean }>();
    const dc = d.get(t);
    if (!dc) {
      out.push(`${t}: missing on the target`);
      continue;
    }
    for (const [a, x] of sc) {
      const y = dc.get(a);
      if (!y) out.push(`${t}: column ${a} (${x.type}) is on the source, not on the target`);
      else if (y.type !== x.type) out.push(`${t}: column ${a} is ${x.type} on the source, ${y.type} on the target`);
    }
    for (const [a, y] of dc) if (!sc.has(a) && y.required) out.push(`${t}: column ${a} is only on the target, NOT NULL without a default`);
  }
  return out;
}

/** The final sync of the strategies that stream through a slot: the target applies the source's last LSN. */
export const finalLsnStep: Step<CutoverContext> = {
  name: 'final-lsn',
  async run(c) {
    const lsn = (await c.src.query<{ l: string }>(`SELECT pg_current_wal_lsn()::text AS l`)).rows[0]!.l;
    if (!(await waitForLsn(c.src, c.meta.names, lsn, c.opts.applyTimeout * 1000)))
      throw new PgrelocateError(
        'apply-timeout',
        `The target did not apply the source's final LSN ${lsn} within ${c.opts.applyTimeout}s.`,
        'Check the subscription on the target (pg_stat_subscription, server log) and retry the cutover.',
      );
    return { lsn };
  },
};

/** `status` of the strategies that stream through a slot: bytes behind (source) and seconds behind (target). */
export async function slotStatus(source: ConnInfo | null, target: ConnInfo, meta: StreamingMeta): Promise<StatusDetail> {
  const lag = source && meta.phase === 'streaming' ? await withClient(source, 'source', (c) => sourceLag(c, meta.names)) : null;
  const secs = meta.phase === 'streaming' ? await withClient(target, 'target', (c) => targetLagSeconds(c, meta.names)) : null;
  return { lag, targetLagSeconds: lag && lag.bytes === 0 ? 0 : secs };
}

/**
 * Wait until the subscription has no table still being copied by it (a table
 * added with REFRESH PUBLICATION is copied by a table-sync worker): its rows
 * are all on the target only once it is `ready` or `synchronized`. Throws,
 * naming them, after `timeoutMs`.
 */
export async function waitTablesSynced(dst: pg.Client, subscription: string, timeoutMs: number): Promise<void> {
  const started = Date.now();
  for (;;) {
    const r = await dst.query<{ t: string }>(
      `SELECT srrelid::regclass::text AS t FROM pg_subscription_rel
        WHERE srsubid = (SELECT oid FROM pg_subscription WHERE subname = $1) AND srsubstate NOT IN ('r', 's')`,
      [subscription],
    );
    if (r.rows.length === 0) return;
    if (Date.now() - started > timeoutMs)
      throw new PgrelocateError(
        'lag-too-high',
        `The subscription is still copying ${r.rows.map((x) => x.t).join(', ')} after ${Math.round(timeoutMs / 1000)}s; nothing was fenced.`,
        `Wait for the copy (pg_subscription_rel on the target shows each table's state; 'r' is done), or raise ${opt('catchUpTimeout')}.`,
      );
    await new Promise((res) => setTimeout(res, 500));
  }
}
