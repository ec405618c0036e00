/**
 * Whole clusters: `--all-databases` or `--databases a,b,c`. Each database is
 * its own run (its state in its own target database), made the same way as a
 * one-database run; what is shared is done once — the roles before any
 * database, the target databases created with the source's encoding, locale
 * and owner — and the cutover is one: every database fenced before any
 * switches, one blackout (streaming/together.ts). The runs go one after the
 * other, each with the whole --jobs budget, so the machines never carry more
 * than one budget at a time.
 */
import { ident, literal, withClient, withDatabase, type ConnInfo } from './conn';
import { PgrelocateError } from './errors';
import type { Emit } from './runner';
import { runCutover, type CutoverReport } from './streaming/cutover';
import type { StreamingHooks } from './streaming/hooks';
import type { StreamingOptions } from './streaming/options';
import { Together } from './streaming/together';
import type { StreamingStrategy } from './strategies/names';

/** Which databases: every one the source serves, or those named. */
export type DatabaseSelection = { readonly all: true } | { readonly names: readonly string[] };

/** Databases a managed service keeps for itself: never an application's. */
const SERVICE_DATABASES = ['rdsadmin', 'azure_maintenance', 'azure_sys', 'cloudsqladmin', '_dodb'];

/**
 * The databases to move, in name order. `all`: every database that allows
 * connections, less templates, a service's own and a `postgres` database
 * without a table of its own (the one every server has). Names that do not
 * exist are refused, naming those that do.
 */
export async function selectDatabases(source: ConnInfo, sel: DatabaseSelection): Promise<string[]> {
  return withClient(source, 'source', async (c) => {
    const r = await c.query<{ name: string; connectable: boolean }>(
      `SELECT datname AS name, datallowconn AS connectable FROM pg_database WHERE NOT datistemplate ORDER BY 1`,
    );
    const usable = r.rows.filter((d) => d.connectable && !SERVICE_DATABASES.includes(d.name)).map((d) => d.name);
    if ('names' in sel) {
      const missing = sel.names.filter((n) => !usable.includes(n));
      if (missing.length > 0)
        throw new PgrelocateError(
          'no-such-database',
          `The source has no database ${missing.map((m) => JSON.stringify(m)).join(', ')} that accepts connections; nothing was changed.`,
          `Name databases it has: ${usable.join(', ')}.`,
        );
      return [...new Set(sel.names)];
    }
    const out: string[] = [];
    for (const name of usable) {
      if (name === 'postgres' && !(await hasTables(withDatabase(source, name)))) continue;
      out.push(name);
    }
    if (out.length === 0)
      throw new PgrelocateError('no-such-database', 'The source has no database to move; nothing was changed.', 'Create one, or name it.');
    return out;
  });
}

async function hasTables(conn: ConnInfo): Promise<boolean> {
  return withClient(conn, 'source', async (c) => {
    const r = await c.query(
      `SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' LIMIT 1`,
    );
    return (r.rowCount ?? 0) > 0;
  });
}

/** A database's facts on the source, for creating it on the target. */
interface DatabaseFacts {
  readonly name: string;
  readonly owner: string;
  readonly encoding: string;
  readonly collate: string;
  readonly ctype: string;
}

/** CREATE DATABASE as the source has it: encoding and locale from template0 (another template's could differ). Pure. */
export function createDatabaseSql(d: DatabaseFacts, sameLocale: boolean): string {
  return `CREATE DATABASE ${ident(d.name)} TEMPLATE template0 ENCODING ${literal(d.encoding)}${
    sameLocale ? '' : ` LC_COLLATE ${literal(d.collate)} LC_CTYPE ${literal(d.ctype)}`
  }`;
}

/**
 * The target databases that do not exist yet, created as the source has them
 * (owned by the target user until the roles are there: `ownDatabases`).
 * Returns those it created.
 */
export async function prepareTargetDatabases(source: ConnInfo, target: ConnInfo, names: readonly string[], emit: Emit): Promise<string[]> {
  const facts = await withClient(
    source,
    'source',
    async (c) =>
      (
        await c.query<DatabaseFacts>(
          `SELECT datname AS name, pg_get_userbyid(datdba) AS owner, pg_encoding_to_char(encoding) AS encoding,
                datcollate AS collate, datctype AS ctype
           FROM pg_database WHERE datname = ANY($1)`,
          [names],
        )
      ).rows,
  );
  return withClient(target, 'target', async (c) => {
    const existing = new Set((await c.query<{ n: string }>(`SELECT datname AS n FROM pg_database`)).rows.map((r) => r.n));
    const [mine] = (
      await c.query<{ collate: string; ctype: string }>(
        `SELECT datcollate AS collate, datctype AS ctype FROM pg_database WHERE datname = 'template0'`,
      )
    ).rows;
    const created: string[] = [];
    for (const d of facts) {
      if (existing.has(d.name)) continue;
      const same = mine?.collate === d.collate && mine?.ctype === d.ctype;
      try {
        await c.query(createDatabaseSql(d, same));
      } catch (e) {
        const msg = (e as Error).message;
        throw new PgrelocateError(
          'database-create-failed',
          `Creating database ${d.name} on the target failed (${msg}); ${created.length ? `created so far: ${created.join(', ')}` : 'nothing was created'}.`,
          /permission denied/i.test(msg)
            ? 'Connect to the target as a role with CREATEDB (the managed service master user has it), or create the databases yourself.'
            : `Create it yourself with the encoding and locale you want (the source's: ${d.encoding}, ${d.collate}), then run again.`,
        );
      }
      created.push(d.name);
      emit({
        type: 'log',
        level: 'info',
        message: `database ${d.name} created on the target (${d.encoding}${same ? '' : `, ${d.collate}`})`,
      });
    }
    return created;
  });
}

/** Once the roles are on the target: each created database owned by its source owner, where that role exists and may be given it. */
export async function ownDatabases(source: ConnInfo, target: ConnInfo, created: readonly string[], emit: Emit): Promise<void> {
  if (created.length === 0) return;
  const owners = await withClient(
    source,
    'source',
    async (c) =>
      (
        await c.query<{ name: string; owner: string }>(
          `SELECT datname AS name, pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = ANY($1)`,
          [created],
        )
      ).rows,
  );
  await withClient(target, 'target', async (c) => {
    for (const o of owners) {
      const has = await c.query(`SELECT 1 FROM pg_roles WHERE rolname = $1 AND rolname <> current_user`, [o.owner]);
      if (!has.rowCount) continue;
      await c.query(`ALTER DATABASE ${ident(o.name)} OWNER TO ${ident(o.owner)}`).catch((e: Error) =>
        emit({
          type: 'log',
          level: 'warn',
          message: `database ${o.name} stays owned by the target user: ${e.message} (ALTER DATABASE … OWNER TO ${o.owner} as a superuser fixes it)`,
        }),
      );
    }
  });
}

/** One database's part of a whole-cluster command. */
export interface PerDatabase<T> {
  readonly database: string;
  readonly result: T;
}

/** Run `work` for each database in turn, with the endpoints pointed at it; each result is kept, the first failure ends the loop. */
export async function eachDatabase<T>(
  source: ConnInfo,
  target: ConnInfo,
  names: readonly string[],
  emit: Emit,
  work: (source: ConnInfo, target: ConnInfo, index: number) => Promise<T>,
): Promise<PerDatabase<T>[]> {
  const out: PerDatabase<T>[] = [];
  for (const [i, name] of names.entries()) {
    emit({ type: 'log', level: 'info', message: `— database ${name} (${i + 1} of ${names.length})` });
    try {
      out.push({ database: name, result: await work(withDatabase(source, name), withDatabase(target, name), i) });
    } catch (e) {
      if (e instanceof PgrelocateError && !e.message.startsWith(`Database ${name}:`))
        throw new PgrelocateError(e.code, `Database ${name}: ${e.message}`, e.fix, e.detail);
      throw e;
    }
  }
  return out;
}

/** What cutting over several databases as one gives. */
export interface ClusterCutoverReport {
  readonly databases: readonly PerDatabase<CutoverReport>[];
  /** From the first database fenced to the last switched: the application's one blackout. */
  readonly blackoutSeconds: number;
}

/**
 * Every database's cutover at once, meeting before the fence and before the
 * switch: one fence over all of them, one blackout. The pre-hook runs once
 * (before anything is fenced), the post-hook once, after every switch.
 */
export async function cutoverDatabases(
  source: ConnInfo,
  target: ConnInfo,
  names: readonly string[],
  options: Partial<StreamingOptions>,
  emit: Emit,
  hooksFor: (s: StreamingStrategy) => StreamingHooks,
  runPostHook: (cmd: string) => Promise<void>,
): Promise<ClusterCutoverReport> {
  const together = new Together(names.length);
  const settled = await Promise.allSettled(
    names.map((name, i) => {
      // The pre-hook with the first database only (every fence waits for it); the post-hook here, after every switch.
      const opts: Partial<StreamingOptions> = { ...options, together, preHook: i === 0 ? options.preHook : undefined, postHook: undefined };
      const tagged: Emit = (e) => emit(e.type === 'log' ? { ...e, message: `${name}: ${e.message}` } : e);
      return runCutover(withDatabase(source, name), withDatabase(target, name), opts, tagged, hooksFor);
    }),
  );
  const failed = settled
    .map((s, i) => ({ s, name: names[i]! }))
    .filter((x): x is { s: PromiseRejectedResult; name: string } => x.s.status === 'rejected');
  const done = settled
    .map((s, i) => ({ database: names[i]!, s }))
    .filter((x): x is { database: string; s: PromiseFulfilledResult<CutoverReport> } => x.s.status === 'fulfilled')
    .map((x) => ({ database: x.database, result: x.s.value }));
  if (failed.length > 0) {
    // The first failure is the cause; the others stopped because of it.
    const cause = failed.find((f) => !(f.s.reason instanceof PgrelocateError && f.s.reason.code === 'cutover-aborted')) ?? failed[0]!;
    const e = cause.s.reason as Error;
    const switched = done.map((d) => d.database);
    throw new PgrelocateError(
      e instanceof PgrelocateError ? e.code : 'step-failed',
      `Database ${cause.name}: ${e.message}${
        switched.length
          ? `\nSwitched already: ${switched.join(', ')} (their cutover is done); the others were not.`
          : '\nNo database was switched.'
      }`,
      `${e instanceof PgrelocateError && e.fix ? `${e.fix} ` : ''}Running the cutover again for all of them finishes each where it stands.`,
    );
  }
  if (options.postHook) await runPostHook(options.postHook);
  return {
    databases: done,
    blackoutSeconds: together.blackoutSeconds ?? Math.max(0, ...done.map((d) => d.result.blackoutSeconds)),
  };
}

/**
 * Each database's run in turn (`one`), the roles moved with the first only
 * (`skipGlobals` true for the others); once they are there, the databases
 * created for the move are given their source owners.
 */
export async function runEachDatabase<T>(
  source: ConnInfo,
  target: ConnInfo,
  names: readonly string[],
  created: readonly string[],
  emit: Emit,
  one: (source: ConnInfo, target: ConnInfo, skipGlobals: boolean) => Promise<T>,
): Promise<PerDatabase<T>[]> {
  return eachDatabase(source, target, names, emit, async (s, t, i) => {
    const r = await one(s, t, i > 0);
    if (i === 0) await ownDatabases(source, target, created, emit);
    return r;
  });
}
