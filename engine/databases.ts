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
import type pg from 'pg';
import { hasErrors, runChecks, type Finding } from './check';
import { ident, literal, withClient, withDatabase, type ConnInfo } from './conn';
import { PgrelocateError } from './errors';
import type { TableFilter } from './filter';
import { chooseStrategy } from './plan';
import { preflight } from './preflight';
import type { Emit } from './runner';
import { streamingHooks, sync, type SyncOutcome } from './strategies';
import { migrate as dumpRestore, type MigrateOptions, type MigrationReport } from './strategies/dump-restore/run';
import { isStreaming, type Strategy, type StreamingStrategy } from './strategies/names';
import { runCutover, type CutoverReport } from './streaming/cutover';
import type { StreamingHooks } from './streaming/hooks';
import { previousRun, type StreamingOptions } from './streaming/options';
import { Together } from './streaming/together';

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

/** The databases a server has. */
async function databasesOf(c: pg.Client): Promise<Set<string>> {
  return new Set((await c.query<{ n: string }>('SELECT datname AS n FROM pg_database')).rows.map((r) => r.n));
}

/** The databases the target's server has already. */
export function targetDatabases(target: ConnInfo): Promise<Set<string>> {
  return withClient(target, 'target', databasesOf);
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
    const existing = await databasesOf(c);
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
  // A database whose cutover an earlier run finished is not cut over again: the rest are, as one.
  const finished: string[] = [];
  for (const name of names) {
    const run = await previousRun(withDatabase(target, name));
    if ((run?.meta as { phase?: string } | null)?.phase === 'done') finished.push(name);
  }
  if (finished.length === names.length)
    throw new PgrelocateError(
      'already-cut-over',
      `Every database (${names.join(', ')}) was already cut over.`,
      'Nothing to do; pgrelocate cleanup removes the state.',
    );
  const pending = names.filter((n) => !finished.includes(n));
  if (finished.length > 0)
    emit({ type: 'log', level: 'info', message: `already cut over: ${finished.join(', ')}; cutting over ${pending.join(', ')}` });
  const together = new Together(pending.length);
  const settled = await Promise.allSettled(
    pending.map((name, i) => {
      // The pre-hook with the first database only (every fence waits for it); the post-hook here, after every switch.
      const opts: Partial<StreamingOptions> = { ...options, together, preHook: i === 0 ? options.preHook : undefined, postHook: undefined };
      const tagged: Emit = (e) => emit(e.type === 'log' ? { ...e, message: `${name}: ${e.message}` } : e);
      // Whatever stops one (even before its own steps: no run, a busy lock) stops the others at their next meeting point.
      return runCutover(withDatabase(source, name), withDatabase(target, name), opts, tagged, hooksFor).catch((e: Error) => {
        together.fail(e);
        throw e;
      });
    }),
  );
  const failed = settled
    .map((s, i) => ({ s, name: pending[i]! }))
    .filter((x): x is { s: PromiseRejectedResult; name: string } => x.s.status === 'rejected');
  const done = settled
    .map((s, i) => ({ database: pending[i]!, s }))
    .filter((x): x is { database: string; s: PromiseFulfilledResult<CutoverReport> } => x.s.status === 'fulfilled')
    .map((x) => ({ database: x.database, result: x.s.value }));
  if (failed.length > 0) {
    // The first failure is the cause; the others stopped because of it.
    const cause = failed.find((f) => !(f.s.reason instanceof PgrelocateError && f.s.reason.code === 'cutover-aborted')) ?? failed[0]!;
    const e = cause.s.reason as Error;
    // Those whose switch was made, finished or stopped after it (cutover-incomplete: the next cutover finishes them).
    const switched = [
      ...done.map((d) => d.database),
      ...failed.filter((f) => f.s.reason instanceof PgrelocateError && f.s.reason.code === 'cutover-incomplete').map((f) => f.name),
    ];
    throw new PgrelocateError(
      e instanceof PgrelocateError ? e.code : 'step-failed',
      `Database ${cause.name}: ${e.message}${
        switched.length ? `\nSwitched already: ${switched.join(', ')}; the others were not.` : '\nNo database was switched.'
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

/** What every database's checks gave, and the one strategy for all. */
export interface ClusterCheck {
  readonly ok: boolean;
  readonly strategy: Strategy;
  readonly databases: readonly {
    readonly database: string;
    readonly strategy: Strategy;
    readonly reason: string;
    readonly findings: readonly Finding[];
    /** The target lacks it: created before its run. */
    readonly created: boolean;
  }[];
}

export interface ClusterCheckOptions {
  readonly strategy?: Strategy;
  readonly force?: boolean;
  readonly replicaIdentityFull?: boolean;
  readonly workDir?: string;
  readonly filter?: TableFilter;
}

/**
 * Every database's checks, nothing changed. A database the target lacks is
 * checked against the target's server (through the database the target URL
 * names), less the emptiness that one says nothing of. The strategy is the one
 * asked for, or the least capable any database allows: one for all.
 */
export async function checkDatabases(
  source: ConnInfo,
  target: ConnInfo,
  names: readonly string[],
  o: ClusterCheckOptions,
): Promise<ClusterCheck> {
  const have = await targetDatabases(target);
  const out: ClusterCheck['databases'][number][] = [];
  for (const name of names) {
    const created = !have.has(name);
    const pre = await preflight(withDatabase(source, name), created ? target : withDatabase(target, name), {
      strategy: o.strategy ?? 'logical',
      force: o.force ?? false,
      replicaIdentityFull: o.replicaIdentityFull ?? false,
      ...(o.workDir ? { workDir: o.workDir } : {}),
      ...(o.filter ? { filter: o.filter } : {}),
    });
    const chosen = chooseStrategy(o.strategy, pre.facts);
    const findings = runChecks({ ...pre.facts, strategy: chosen.strategy }).filter((f) => !(created && f.code === 'target-not-empty'));
    if (created)
      findings.push({
        level: 'info',
        code: 'database-created',
        message: `The target has no database ${name}: it is created with the source's encoding and locale, then moved.`,
        fix: '',
      });
    out.push({ database: name, strategy: chosen.strategy, reason: chosen.reason, findings, created });
  }
  const order: Strategy[] = ['logical', 'pglogical', 'bucardo', 'dump-restore'];
  const strategy = o.strategy ?? [...out].map((d) => d.strategy).sort((a, b) => order.indexOf(b) - order.indexOf(a))[0]!;
  return { ok: out.every((d) => !hasErrors(d.findings)), strategy, databases: out };
}

/** Checks passed for every database, then the target's missing databases made: where sync, copy and migrate start. */
export async function prepareDatabases(
  source: ConnInfo,
  target: ConnInfo,
  sel: DatabaseSelection,
  o: ClusterCheckOptions,
  emit: Emit,
): Promise<{ names: string[]; strategy: Strategy; created: string[] }> {
  const names = await selectDatabases(source, sel);
  const checked = await checkDatabases(source, target, names, o);
  if (!checked.ok) {
    const errors = checked.databases.flatMap((d) =>
      d.findings.filter((f) => f.level === 'error').map((f) => `${d.database}: ${f.message}\n    fix: ${f.fix}`),
    );
    throw new PgrelocateError(
      'check-failed',
      `Preflight checks failed; nothing was changed:\n  ${errors.join('\n  ')}`,
      'Fix the errors above, then run again.',
      { findings: checked.databases },
    );
  }
  emit({ type: 'log', level: 'info', message: `databases: ${names.join(', ')}; strategy ${checked.strategy}` });
  return { names, strategy: checked.strategy, created: await prepareTargetDatabases(source, target, names, emit) };
}

/** What `sync` over several databases gives. */
export interface ClusterSync {
  readonly strategy: StreamingStrategy;
  readonly databases: readonly PerDatabase<SyncOutcome>[];
}

/** `sync` of every database in turn (roles with the first); each then streams until the one cutover. */
export async function syncDatabases(
  source: ConnInfo,
  target: ConnInfo,
  sel: DatabaseSelection,
  options: Partial<StreamingOptions> & { readonly strategy?: StreamingStrategy },
  emit: Emit,
): Promise<ClusterSync> {
  const r = await prepareDatabases(source, target, sel, checkOptionsOf(options), emit);
  if (!isStreaming(r.strategy))
    throw new PgrelocateError(
      'check-failed',
      `Not every database can stream (${r.strategy} is the strategy they all allow); nothing was changed.`,
      'Run migrate --strategy dump-restore with the same databases, or fix what check names for the others.',
    );
  const strategy = r.strategy;
  const databases = await runEachDatabase(source, target, r.names, r.created, emit, (s, t, skip) =>
    sync(strategy, s, t, skip ? { ...options, skipGlobals: true } : options, emit),
  );
  return { strategy, databases };
}

/** The one cutover of every database a cluster run streams into: those named, or every one of the source the target has. */
export async function cutoverCluster(
  source: ConnInfo,
  target: ConnInfo,
  sel: DatabaseSelection,
  options: Partial<StreamingOptions>,
  emit: Emit,
  runPostHook: (cmd: string) => Promise<void>,
): Promise<ClusterCutoverReport> {
  const names = await databasesOnTarget(source, target, sel);
  return cutoverDatabases(source, target, names, options, emit, streamingHooks, runPostHook);
}

/** The databases of a cluster run the target has: every one named must be there. */
export async function databasesOnTarget(source: ConnInfo, target: ConnInfo, sel: DatabaseSelection): Promise<string[]> {
  const names = await selectDatabases(source, sel);
  const have = await targetDatabases(target);
  const missing = names.filter((n) => !have.has(n));
  if (missing.length > 0 && 'names' in sel)
    throw new PgrelocateError(
      'no-run',
      `The target has no database ${missing.join(', ')}; nothing was changed.`,
      'Run pgrelocate sync with the same databases first.',
    );
  return names.filter((n) => have.has(n));
}

/** What `migrate` over several databases gives: dump-restore's report per database, or every sync and the one cutover. */
export type ClusterMigration =
  | { readonly strategy: 'dump-restore'; readonly databases: readonly PerDatabase<MigrationReport>[] }
  | { readonly strategy: StreamingStrategy; readonly sync: readonly PerDatabase<SyncOutcome>[]; readonly cutover: ClusterCutoverReport };

/** `migrate` of every database: dump-restore one after the other, or each synced and then one cutover for all. */
export async function migrateDatabases(
  source: ConnInfo,
  target: ConnInfo,
  sel: DatabaseSelection,
  options: { readonly strategy?: Strategy; readonly dumpRestore?: MigrateOptions; readonly streaming?: Partial<StreamingOptions> },
  emit: Emit,
  runPostHook: (cmd: string) => Promise<void>,
): Promise<ClusterMigration> {
  const streaming = options.streaming ?? {};
  const r = await prepareDatabases(
    source,
    target,
    sel,
    { ...checkOptionsOf(streaming), ...(options.strategy ? { strategy: options.strategy } : {}) },
    emit,
  );
  if (r.strategy === 'dump-restore') {
    const base = { ...options.dumpRestore, strategy: 'dump-restore' as const };
    const databases = await runEachDatabase(source, target, r.names, r.created, emit, (s, t, skip) =>
      dumpRestore(s, t, skip ? { ...base, skipGlobals: true } : base, emit),
    );
    return { strategy: 'dump-restore', databases };
  }
  const strategy = r.strategy;
  const synced = await runEachDatabase(source, target, r.names, r.created, emit, (s, t, skip) =>
    sync(strategy, s, t, skip ? { ...streaming, skipGlobals: true } : streaming, emit),
  );
  const cutover = await cutoverDatabases(source, target, r.names, streaming, emit, streamingHooks, runPostHook);
  return { strategy, sync: synced, cutover };
}

function checkOptionsOf(o: Partial<StreamingOptions> & { readonly strategy?: Strategy }): ClusterCheckOptions {
  return {
    ...(o.strategy ? { strategy: o.strategy } : {}),
    ...(o.force !== undefined ? { force: o.force } : {}),
    ...(o.replicaIdentityFull !== undefined ? { replicaIdentityFull: o.replicaIdentityFull } : {}),
    ...(o.workDir ? { workDir: o.workDir } : {}),
    ...(o.filter ? { filter: o.filter } : {}),
  };
}
