/**
 * The write fence on the source, in two stages.
 *
 * Held: pgrelocate's own session locks every migrated table IN EXCLUSIVE MODE
 * in one open transaction. Readers go on; every writer — whatever it asked
 * for (`BEGIN READ WRITE`, a superuser, a session opened before) — waits on
 * the lock instead of failing. Nothing is written to the catalogs, so if
 * pgrelocate dies or loses its connection the server ends the transaction and
 * the source is writable again at once (a frozen host: after
 * `idle_in_transaction_session_timeout`, set to the --max-blackout bound).
 *
 * Permanent: only at the switch, once the target holds the final LSN, the
 * same transaction adds a trigger on every migrated table that refuses any
 * write (SQLSTATE 25006, naming the new server), sets the database and the
 * login roles that override it `default_transaction_read_only`, records all it
 * changed on the source itself, and commits: all of it or none. Waiting
 * writers then meet the trigger. Logical replication's apply workers run with
 * `session_replication_role = replica`, so a subscription into the old source
 * (a rollback) still applies.
 */
import type pg from 'pg';
import { connect, ident, literal, type ConnInfo } from '../conn';
import { PgrelocateError } from '../errors';
import { MANAGED_ROLE } from '../globals';
import { filterSql, isFiltered, type TableFilter } from '../filter';
import { SYSTEM_SCHEMA_FILTER } from '../inspect';
import { opt } from '../option-names';
import type { Step } from '../runner';
import { pausePool, releasePool, type PausedPool, type Pool } from './pgbouncer';

/** Where the permanent fence's function lives on the source, and its triggers' names. */
export const FENCE_SCHEMA = 'pgrelocate';
export const FENCE_FUNCTION = `${FENCE_SCHEMA}.refuse_write`;
const TRIGGER = 'pgrelocate_fence';
const TRUNCATE_TRIGGER = 'pgrelocate_fence_truncate';
/** The permanent fence's triggers, as comparisons leave them out and a copy back sets them aside. */
export const FENCE_TRIGGERS = [TRIGGER, TRUNCATE_TRIGGER] as const;
/** application_name of the session that holds the fence: what `status` looks for. */
export const FENCE_SESSION = 'pgrelocate fence';

const SETTING = 'default_transaction_read_only';

/** Everything the fence changes, recorded before the first change (in the run) and with the change (on the source). */
export interface FenceRecord {
  readonly runId: string;
  readonly database: string;
  /** Earlier database-level value, or null when none was set. */
  readonly databaseValue: string | null;
  readonly roles: readonly { readonly role: string; readonly value: string | null }[];
  /** The migrated tables: locked while held, given the refusing trigger when permanent. */
  readonly tables: readonly string[];
  /**
   * false: a filtered run moved part of the database, so only its tables are
   * fenced; the database and its roles stay writable for what stays here.
   * Absent (every earlier record): the whole database.
   */
  readonly tablesOnly?: boolean;
  /** The new server, as the refusal names it (no password). */
  readonly movedTo: string;
  /** held: pgrelocate's session holds the locks (nothing in the catalogs); permanent: committed at the switch. */
  state: 'held' | 'permanent';
  /** When it became permanent. */
  at?: string;
  /** Client sessions ended at the switch, and those pgrelocate may not end (the trigger refuses their writes). */
  terminated?: number;
  kept?: number;
}

/**
 * A record from an earlier version: database and role settings only, no
 * tables, no triggers. Read as a permanent fence with no tables.
 */
export function asRecord(x: unknown): FenceRecord | null {
  if (!x || typeof x !== 'object') return null;
  const r = x as Partial<FenceRecord>;
  if (typeof r.database !== 'string') return null;
  return {
    runId: r.runId ?? '',
    database: r.database,
    databaseValue: r.databaseValue ?? null,
    roles: r.roles ?? [],
    tables: r.tables ?? [],
    ...(r.tablesOnly ? { tablesOnly: true } : {}),
    movedTo: r.movedTo ?? '',
    state: r.state ?? 'permanent',
    ...(r.at ? { at: r.at } : {}),
  };
}

function valueOf(config: readonly string[] | null): string | null {
  const e = (config ?? []).find((x) => x.startsWith(`${SETTING}=`));
  return e ? e.slice(SETTING.length + 1) : null;
}

/** The migrated tables: every plain table and partition outside the system schemas and extensions that the run's filter keeps (quoted). */
export async function migratedTables(c: pg.Client, filter?: TableFilter): Promise<string[]> {
  const r = await c.query<{ q: string }>(
    `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS q FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND ${SYSTEM_SCHEMA_FILTER} AND ${filterSql(filter)}
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
      ORDER BY 1`,
  );
  return r.rows.map((x) => x.q);
}

/**
 * What the fence will change, read before anything changes: the tables, the
 * database's setting and the login roles whose own setting would override it
 * (only those: ALTER ROLE is what a managed service's user often may not run).
 */
export async function planFence(
  c: pg.Client,
  database: string,
  runId: string,
  movedTo: string,
  filter?: TableFilter,
): Promise<FenceRecord> {
  // A filtered run leaves the rest of the database in use here: its tables only are fenced (triggers and locks).
  if (isFiltered(filter))
    return {
      runId,
      database,
      databaseValue: null,
      roles: [],
      tables: await migratedTables(c, filter),
      tablesOnly: true,
      movedTo,
      state: 'held',
    };
  const existing = await c.query<{ role: string | null; config: string[] }>(
    `SELECT CASE WHEN setrole = 0 THEN NULL ELSE pg_get_userbyid(setrole) END AS role, setconfig AS config
       FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = $1)`,
    [database],
  );
  const overriding = (
    await c.query<{ rolname: string }>(
      `SELECT DISTINCT r.rolname FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
        WHERE s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = $1)) AND r.rolcanlogin
          AND r.rolname <> current_user AND r.rolname !~ '^pg_'
          AND EXISTS (SELECT 1 FROM unnest(s.setconfig) e WHERE e LIKE '${SETTING}=%')
        ORDER BY 1`,
      [database],
    )
  ).rows
    .map((r) => r.rolname)
    .filter((r) => !MANAGED_ROLE.test(r));
  return {
    runId,
    database,
    databaseValue: valueOf(existing.rows.find((r) => r.role === null)?.config ?? null),
    roles: overriding.map((role) => ({ role, value: valueOf(existing.rows.find((r) => r.role === role)?.config ?? null) })),
    tables: await migratedTables(c),
    movedTo,
    state: 'held',
  };
}

/**
 * Before the fence (it refuses nothing yet): the schema and the function the
 * permanent fence's triggers call, so that inside the blackout only the
 * triggers are created. The message names the new server.
 */
export async function prepareFence(c: pg.Client, movedTo: string): Promise<void> {
  const hint = `Point the application at the new server (${movedTo.replace(/[^\x20-\x7e]/g, '?')}); writes here are lost.`;
  await c.query(`SET ${SETTING} = off`);
  await c.query(`CREATE SCHEMA IF NOT EXISTS ${FENCE_SCHEMA}`);
  await c.query(
    `CREATE OR REPLACE FUNCTION ${FENCE_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $fence$
     BEGIN
       RAISE EXCEPTION 'cannot write to %.%: this database was moved by pgrelocate and is read-only', TG_TABLE_SCHEMA, TG_TABLE_NAME
         USING ERRCODE = 'read_only_sql_transaction', HINT = ${literal(hint)};
     END $fence$`,
  );
}

/** The SQL that makes a held fence permanent, run inside its transaction. Pure. */
export function permanentFenceSql(r: FenceRecord): string {
  const db = ident(r.database);
  const fn = `${FENCE_FUNCTION}()`;
  return [
    ...r.tables.flatMap((t) => [
      `CREATE TRIGGER ${TRIGGER} BEFORE INSERT OR UPDATE OR DELETE ON ${t} FOR EACH ROW EXECUTE PROCEDURE ${fn}`,
      `CREATE TRIGGER ${TRUNCATE_TRIGGER} BEFORE TRUNCATE ON ${t} FOR EACH STATEMENT EXECUTE PROCEDURE ${fn}`,
    ]),
    ...(r.tablesOnly ? [] : [`ALTER DATABASE ${db} SET ${SETTING} = on`]),
    ...r.roles.map((x) => `ALTER ROLE ${ident(x.role)} IN DATABASE ${db} SET ${SETTING} = on`),
    `COMMENT ON FUNCTION ${fn} IS ${literal(JSON.stringify({ ...r, state: 'permanent' }))}`,
  ].join(';\n');
}

/** The SQL that lifts a permanent fence: settings back as they were, triggers and function gone. Pure. */
export function unfenceSql(r: FenceRecord, functionExists: boolean): string {
  const db = ident(r.database);
  return [
    ...(r.tablesOnly
      ? []
      : [
          r.databaseValue === null
            ? `ALTER DATABASE ${db} RESET ${SETTING}`
            : `ALTER DATABASE ${db} SET ${SETTING} = ${literal(r.databaseValue)}`,
        ]),
    ...r.roles.map((x) =>
      x.value === null
        ? `ALTER ROLE ${ident(x.role)} IN DATABASE ${db} RESET ${SETTING}`
        : `ALTER ROLE ${ident(x.role)} IN DATABASE ${db} SET ${SETTING} = ${literal(x.value)}`,
    ),
    // CASCADE: the triggers on the migrated tables depend on the function.
    ...(functionExists ? [`DROP FUNCTION ${FENCE_FUNCTION}() CASCADE`] : []),
  ].join(';\n');
}

/**
 * `work`, or `error()` once `ms` have passed: what runs inside a fence is
 * bounded. The work is not cancelled; its late result or failure is ignored.
 */
export async function withinBound<T>(work: T | Promise<T>, ms: number, error: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(error()), Math.max(0, ms));
  });
  const w = Promise.resolve(work);
  w.catch(() => undefined);
  try {
    return await Promise.race([w, limit]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The guardrail on a step inside a fence: past the fence's deadline
 * (--max-blackout from the fence) it fails, and the caller lifts the fence.
 * `what` names the operation in the message (the cutover, the rollback).
 */
export function guarded<C extends { readonly opts: { readonly maxBlackout: number }; readonly deadline: number }>(
  step: Step<C>,
  what: string,
): Step<C> {
  return {
    name: step.name,
    run: (c, emit) =>
      withinBound(
        step.run(c, emit),
        c.deadline - Date.now(),
        () =>
          new PgrelocateError(
            'max-blackout',
            `The ${what}'s write fence reached the ${c.opts.maxBlackout}s guardrail during ${step.name}; it was lifted and the ${what} rolled back: the writers go on where they were and replication keeps running.`,
            `Find what took long (pgrelocate status lists the steps), then run the ${what} again, or raise ${opt('maxBlackout')}.`,
          ),
      ),
  };
}

/** Lock modes EXCLUSIVE waits for: every one but ACCESS SHARE. */
const CONFLICTING = `('RowShareLock', 'RowExclusiveLock', 'ShareUpdateExclusiveLock', 'ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')`;

/** The fence while pgrelocate's session holds it. */
export class HeldFence {
  private open = true;

  private constructor(
    private readonly client: pg.Client,
    readonly tables: readonly string[],
    /** How long taking the locks took (writers queue behind the request meanwhile). */
    readonly lockWaitSeconds: number,
  ) {}

  /**
   * Lock every one of `tables` IN EXCLUSIVE MODE in a new session of the
   * source, waiting at most `lockWaitMs` for writers in flight (in attempts
   * that wait longer each time, so a deadlock with one costs a short wait,
   * not deadlock_timeout). If a transaction holds a table longer, nothing is
   * fenced and the error names it. The session ends itself after
   * `maxBlackoutMs` idle in its transaction (a frozen or cut-off pgrelocate).
   */
  static async acquire(source: ConnInfo, tables: readonly string[], lockWaitMs: number, maxBlackoutMs: number): Promise<HeldFence> {
    const client = await connect(source, 'source', { application_name: FENCE_SESSION });
    const started = Date.now();
    try {
      await client.query(`SET ${SETTING} = off; SET idle_in_transaction_session_timeout = ${Math.ceil(maxBlackoutMs)}`);
      for (let attempt = 0; ; attempt++) {
        // Each attempt waits a little longer (25 ms, 50, 100, … within lockWaitMs): a writer holding one table while it
        // waits for one already locked here is a deadlock the server would only find after deadlock_timeout (1 s, and
        // only a superuser may lower it); this way it costs one short wait, and the writer goes first.
        const waitMs = Math.min(25 * 2 ** attempt, lockWaitMs - (Date.now() - started));
        await client.query('BEGIN');
        try {
          await client.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.ceil(waitMs))}`);
          if (tables.length > 0) await client.query(`LOCK TABLE ${tables.map((t) => `ONLY ${t}`).join(', ')} IN EXCLUSIVE MODE`);
          break;
        } catch (e) {
          await client.query('ROLLBACK').catch(() => undefined);
          const code = (e as { code?: string }).code;
          if ((code === '55P03' || code === '40P01') && Date.now() - started < lockWaitMs - 1) continue;
          if (code === '55P03' || code === '40P01') throw await lockRefused(source, tables, lockWaitMs);
          if (code === '53200')
            throw new PgrelocateError(
              'fence-failed',
              `The source cannot lock all ${tables.length} tables in one transaction (${(e as Error).message}); nothing was fenced.`,
              'Raise max_locks_per_transaction on the source (a restart; on RDS, in its parameter group) above the number of tables divided by max_connections, and retry the cutover.',
            );
          throw e;
        }
      }
      return new HeldFence(client, tables, (Date.now() - started) / 1000);
    } catch (e) {
      await client.end().catch(() => undefined);
      throw e;
    }
  }

  /**
   * Proof the fence held from the lock to now: every table still locked by
   * this same transaction (a lost session would fail here, or at COMMIT).
   */
  async proveHeld(): Promise<number> {
    const r = await this.client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation' AND mode = 'ExclusiveLock' AND granted
          AND relation = ANY($1::text[]::regclass[])`,
      [this.tables],
    );
    const n = r.rows[0]!.n;
    if (n !== this.tables.length)
      throw new PgrelocateError(
        'fence-lost',
        `The fence holds ${n} of ${this.tables.length} table locks; the switch was not made.`,
        'Run the cutover again.',
      );
    return n;
  }

  /** Make the fence permanent as `record` says and release the locks, in one commit. Throws when the commit did not happen. */
  async makePermanent(record: FenceRecord): Promise<void> {
    await this.client.query(permanentFenceSql(record));
    await this.client.query('COMMIT');
    this.open = false;
    await this.client.end().catch(() => undefined);
  }

  /** Lift the held fence: the transaction is rolled back (nothing was ever written) and the session ends. */
  async release(): Promise<void> {
    if (!this.open) return;
    this.open = false;
    await this.client.query('ROLLBACK').catch(() => undefined);
    await this.client.end().catch(() => undefined);
  }
}

/** The fence taken: the table locks, and PgBouncer's pool paused before them when there is one. */
export interface TakenFence {
  readonly held: HeldFence;
  readonly pool: PausedPool | null;
}

/**
 * Take the fence on `conn` within the --max-blackout bound: writers in flight
 * get half of it (5 s at most) to end — PgBouncer's PAUSE first when a pool
 * is given, then the table locks — the rest is for the steps inside. One
 * rule for the cutover, the rollback and the pinned verification.
 */
export async function takeFence(
  conn: ConnInfo,
  tables: readonly string[],
  maxBlackoutSeconds: number,
  pool?: Pool | null,
): Promise<TakenFence> {
  const waitMs = Math.min(5000, maxBlackoutSeconds * 500);
  const paused = pool ? await pausePool(pool, waitMs, maxBlackoutSeconds * 1000) : null;
  try {
    return { held: await HeldFence.acquire(conn, tables, waitMs, maxBlackoutSeconds * 1000), pool: paused };
  } catch (e) {
    if (paused) await releasePool(paused, null).catch(() => undefined);
    throw e;
  }
}

/** The refusal when the locks could not be had in time: who held them. */
async function lockRefused(source: ConnInfo, tables: readonly string[], lockWaitMs: number): Promise<PgrelocateError> {
  const holders = await (async () => {
    const c = await connect(source, 'source');
    try {
      const r = await c.query<{ pid: number; who: string; state: string; age: string; tables: string }>(
        `SELECT a.pid, coalesce(a.usename::text, '?') || coalesce(' (' || nullif(a.application_name, '') || ')', '') AS who, coalesce(a.state, '?') AS state,
                coalesce(extract(epoch FROM now() - a.xact_start)::int::text || 's', '?') AS age,
                string_agg(DISTINCT quote_ident(n.nspname) || '.' || quote_ident(r.relname), ', ') AS tables
           FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
           JOIN pg_class r ON r.oid = l.relation JOIN pg_namespace n ON n.oid = r.relnamespace
          WHERE l.granted AND l.locktype = 'relation' AND l.mode IN ${CONFLICTING} AND a.application_name <> $2
            AND l.relation = ANY($1::text[]::regclass[]) AND a.pid <> pg_backend_pid()
          GROUP BY 1, 2, 3, 4 ORDER BY 1 LIMIT 10`,
        [tables, FENCE_SESSION],
      );
      return r.rows.map((x) => `pid ${x.pid} ${x.who}, ${x.state}, transaction open ${x.age}, on ${x.tables}`);
    } finally {
      await c.end().catch(() => undefined);
    }
  })().catch(() => [] as string[]);
  return new PgrelocateError(
    'fence-busy',
    `Writes in flight on the source did not end within ${(lockWaitMs / 1000).toFixed(1)}s, so the fence was not taken and nothing was fenced${holders.length ? `: ${holders.join('; ')}` : ''}.`,
    `End those transactions (an "idle in transaction" session is usually an application holding one open), then run the cutover again; or raise ${opt('maxBlackout')}.`,
  );
}

/**
 * After the switch: end every other client session of the database, so
 * applications reconnect (to the new server). Sessions pgrelocate may not end
 * (a superuser's on a managed service) are kept: the trigger refuses their
 * writes. `spare`: an application_name LIKE pattern left running (Bucardo's);
 * `keep`: pgrelocate's own.
 */
export async function endSessions(
  c: pg.Client,
  database: string,
  spare: string | undefined,
  keep: readonly number[],
): Promise<{ terminated: number; kept: number }> {
  // Two queries: in one, the planner may call pg_terminate_backend before filtering out our own pid.
  const others = await c.query<{ pid: number; may: boolean }>(
    `SELECT a.pid, ((SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
                     OR (NOT r.rolsuper AND (pg_has_role(a.usesysid, 'MEMBER') OR pg_has_role('pg_signal_backend', 'MEMBER')))) AS may
       FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid
      WHERE a.datname = $1 AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend' AND NOT a.pid = ANY($3::int[])
        AND ($2::text IS NULL OR a.application_name NOT LIKE $2)`,
    [database, spare ?? null, keep],
  );
  const pids = others.rows.filter((r) => r.may).map((r) => r.pid);
  if (pids.length > 0) await c.query(`SELECT pg_terminate_backend(p) FROM unnest($1::int[]) AS p`, [pids]);
  return { terminated: pids.length, kept: others.rows.length - pids.length };
}

/** What the source itself says about a fence: the permanent record, a live held fence, or a read-only setting. */
export interface SourceFence {
  readonly state: 'writable' | 'held' | 'permanent' | 'read-only';
  /** One line for `status`. */
  readonly text: string;
  readonly record: FenceRecord | null;
}

/** The permanent fence recorded on the source, or null. */
export async function readFence(c: pg.Client): Promise<FenceRecord | null> {
  const r = await c.query<{ d: string | null }>(
    `SELECT obj_description(p.oid, 'pg_proc') AS d FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = $1 AND p.proname = 'refuse_write' AND p.pronargs = 0`,
    [FENCE_SCHEMA],
  );
  const d = r.rows[0]?.d;
  if (!d) return null;
  try {
    return asRecord(JSON.parse(d));
  } catch {
    return null;
  }
}

/** Whether the source is fenced, and how, read from the source (not from the run's record). */
export async function sourceFence(c: pg.Client): Promise<SourceFence> {
  const record = await readFence(c);
  if (record)
    return {
      state: 'permanent',
      text: `FENCED (permanent since ${record.at ?? '?'}, run ${record.runId}): writes to its ${record.tables.length} tables are refused; lift with pgrelocate cleanup --unfence`,
      record,
    };
  const held = await c.query<{ pid: number; secs: string }>(
    `SELECT pid, coalesce(extract(epoch FROM now() - xact_start)::int, 0)::text AS secs FROM pg_stat_activity
      WHERE application_name = $1 AND datname = current_database() AND xact_start IS NOT NULL`,
    [FENCE_SESSION],
  );
  if (held.rows.length > 0)
    return {
      state: 'held',
      text: `FENCED by pgrelocate's session (pid ${held.rows[0]!.pid}, for ${held.rows[0]!.secs}s): writers wait; it lifts by itself when that session ends`,
      record: null,
    };
  const ro = await c.query<{ v: string }>(`SELECT current_setting('${SETTING}') AS v`);
  const dbSetting = await c.query(
    `SELECT 1 FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()) AND setrole = 0
        AND '${SETTING}=on' = ANY(setconfig)`,
  );
  if (dbSetting.rowCount || ro.rows[0]?.v === 'on')
    return { state: 'read-only', text: `read-only (${SETTING} = on, not set by a pgrelocate fence)`, record: null };
  return { state: 'writable', text: 'writable', record: null };
}

/**
 * Lift a permanent fence in one transaction: the source's own record first
 * (it survives the target's state being removed), else the one the run kept.
 * Returns what it lifted, or null when there was none.
 */
export async function unfence(c: pg.Client, fromRun: FenceRecord | null): Promise<FenceRecord | null> {
  await c.query(`SET ${SETTING} = off`);
  const onSource = await readFence(c);
  const r = onSource ?? (fromRun && fromRun.state === 'permanent' ? fromRun : null);
  if (!r) return null;
  await c.query('BEGIN');
  try {
    await c.query(unfenceSql(r, onSource !== null));
    await c.query('COMMIT');
  } catch (e) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
  await dropSchemaIfEmpty(c);
  return r;
}

/** The fence's schema goes too when nothing else was put in it (on a target, the run's state is there). */
async function dropSchemaIfEmpty(c: pg.Client): Promise<void> {
  await c.query(
    `DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = ${literal(FENCE_SCHEMA)})
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.refobjid = (SELECT oid FROM pg_namespace WHERE nspname = ${literal(FENCE_SCHEMA)}) AND d.refclassid = 'pg_namespace'::regclass)
       THEN EXECUTE 'DROP SCHEMA ${FENCE_SCHEMA}'; END IF; END $$`,
  );
}

/** Remove a prepared but never used fence function (a cutover that stopped before the switch). */
export async function dropUnusedFence(c: pg.Client): Promise<void> {
  if (await readFence(c)) return;
  await c.query(`SET ${SETTING} = off`);
  await c.query(`DROP FUNCTION IF EXISTS ${FENCE_FUNCTION}() CASCADE`);
  await dropSchemaIfEmpty(c);
}
