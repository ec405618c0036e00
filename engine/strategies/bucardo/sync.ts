/**
 * Strategy `bucardo` (seed 004): for sources that allow no replication at all
 * (Heroku). Trigger-based: Bucardo puts a `bucardo` schema and delta triggers
 * on the source, copies every table once (`onetimecopy`) and then carries
 * each change. pgrelocate restores the whole schema first, installs the control
 * database, adds the databases (passwords written with SQL, never on a
 * command line), the tables that have a primary key and every sequence, a
 * sync with `onetimecopy=1` (generated columns left out through
 * `customcols`), starts the daemon and waits for the copy, showing progress.
 * Tables without a primary key are copied in full inside the cutover fence.
 * Its cutover, cleanup and status hooks are in index.ts.
 */
import { opt } from '../../option-names';
import type pg from 'pg';
import { connect, ident, serverVersionNum, withClient, type ConnInfo } from '../../conn';
import { PgrelocateError } from '../../errors';
import { qualified, type TableInfo } from '../../inspect';
import { ProgressMeter, type Emit, type Step } from '../../runner';
import { schemaFirstSteps } from '../../copy/schema-first';
import { reportBase, runStreamingSync, type StreamingReportBase } from '../../streaming/run';
import { parallelCopySteps, type CopyContext } from '../../copy/steps';
import { publishedTables } from '../../streaming/snapshot';
import { newMeta, resolveStreamingOptions, type StreamingMeta, type StreamingOptions } from '../../streaming/options';
import { BucardoControl, controlDir, kickSql, parseStatus } from './control';
import { bucardoNames, type BucardoMeta } from './meta';

export interface BucardoSyncReport extends StreamingReportBase {
  readonly tables: number;
  readonly fullCopy: readonly string[];
  readonly copySeconds: number | null;
}

type Meta = StreamingMeta & { bucardo: BucardoMeta };

interface Ctx extends CopyContext {
  readonly meta: Meta;
  readonly control: BucardoControl;
  copySeconds?: number;
}

/** The control session's view of a run's Bucardo, from its meta (and the control URL when given, for its superuser). */
export function controlFor(meta: BucardoMeta, controlUrl?: ConnInfo): BucardoControl {
  const base: ConnInfo = controlUrl ?? {
    host: meta.control.host,
    port: meta.control.port,
    user: meta.control.user,
    password: undefined,
    database: 'postgres',
    sslmode: 'prefer',
    params: {},
  };
  return new BucardoControl(base, meta.dir);
}

/**
 * `bucardo add db` arguments for one side. No password: it goes into
 * bucardo.db with SQL right after, so the connection test that `add db` would
 * make without it is skipped (`--force`). Pure.
 */
export function addDbArgs(name: string, c: ConnInfo): string[] {
  const args = ['add', 'db', name, `dbhost=${c.host}`, `dbport=${c.port}`, `dbname=${c.database}`, `dbuser=${c.user}`, '--force'];
  if (c.sslmode && c.sslmode !== 'disable') args.push(`conn=sslmode=${c.sslmode}`);
  return args;
}

/** Bucardo's name for a table or sequence: schema.name, unquoted. Pure. */
const bucardoName = (schema: string, name: string): string => `${schema}.${name}`;

async function generatedColumnLists(src: pg.Client, tables: readonly TableInfo[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if ((await serverVersionNum(src)) < 120000) return out;
  for (const t of tables) {
    const r = await src.query<{ cols: string[] | null; generated: boolean }>(
      `SELECT array_agg(quote_ident(attname) ORDER BY attnum) FILTER (WHERE attgenerated = '') AS cols, bool_or(attgenerated <> '') AS generated
         FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`,
      [qualified(t)],
    );
    if (r.rows[0]?.generated && r.rows[0].cols) out.set(bucardoName(t.schema, t.name), `select ${r.rows[0].cols.join(', ')}`);
  }
  return out;
}

const hasBucardoSchema = async (conn: ConnInfo, label: string): Promise<boolean> =>
  withClient(conn, label, async (c) => ((await c.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'bucardo'`)).rowCount ?? 0) > 0);

const bucardoSteps: Step<Ctx>[] = [
  {
    name: 'control',
    what: 'Bucardo control database (--bucardo-url), source and target databases, passwords by SQL',
    async run(ctx) {
      const installed = await ctx.control.ensureInstalled();
      ctx.meta.bucardo.installedControl ||= installed;
      await ctx.state.setMeta(ctx.meta);
      const b = ctx.meta.bucardo;
      for (const [name, conn] of [
        [b.sourceDb, ctx.source],
        [b.targetDb, ctx.target],
      ] as const) {
        const exists = await ctx.control.sql((c) => c.query(`SELECT 1 FROM bucardo.db WHERE name = $1`, [name]));
        if (exists.rowCount === 0) await ctx.control.run(addDbArgs(name, conn));
        await ctx.control.sql((c) => c.query(`UPDATE bucardo.db SET dbpass = $1 WHERE name = $2`, [conn.password ?? null, name]));
      }
      return { installedControl: installed, databases: [b.sourceDb, b.targetDb] };
    },
  },
  {
    name: 'sync-setup',
    what: 'tables with a primary key and every sequence in a relgroup, a sync (onetimecopy=1 unless --bucardo-parallel-copy)',
    async run(ctx, emit) {
      const b = ctx.meta.bucardo;
      const exists = await ctx.control.sql((c) => c.query(`SELECT 1 FROM bucardo.sync WHERE name = $1`, [b.sync]));
      const tables = publishedTables(ctx.pre.source.database.tables);
      const keyed = tables.filter((t) => t.primaryKey.length > 0);
      b.fullCopy = tables.filter((t) => t.primaryKey.length === 0).map((t) => qualified(t));
      await ctx.state.setMeta(ctx.meta);
      if (b.fullCopy.length > 0)
        emit({
          type: 'log',
          level: 'warn',
          message: `no primary key, so Bucardo cannot track them; copied in full inside the cutover window: ${b.fullCopy.join(', ')}`,
        });
      if (exists.rowCount !== 0) return { skipped: 'sync exists (resumed)' };
      if (keyed.length > 0)
        await ctx.control.run([
          'add',
          'table',
          ...keyed.map((t) => bucardoName(t.schema, t.name)),
          `db=${b.sourceDb}`,
          `relgroup=${b.relgroup}`,
        ]);
      const seqs = ctx.pre.source.database.sequences.map((s) => bucardoName(s.schema, s.name));
      if (seqs.length > 0) await ctx.control.run(['add', 'sequence', ...seqs, `db=${b.sourceDb}`, `relgroup=${b.relgroup}`]);
      const addSync = [
        'add',
        'sync',
        b.sync,
        `relgroup=${b.relgroup}`,
        `dbs=${b.sourceDb}:source,${b.targetDb}:target`,
        `onetimecopy=${ctx.opts.bucardoParallelCopy ? 0 : 1}`,
      ];
      // Creating the triggers takes a lock on each table in one transaction; an application transaction
      // that writes two of them can deadlock with it (seen under the write load). It all rolls back: retry.
      for (let attempt = 1; ; attempt++) {
        try {
          await ctx.control.run(addSync);
          break;
        } catch (e) {
          if (attempt >= 5 || !/deadlock|waits for \w+Lock/i.test((e as Error).message)) throw e;
          emit({
            type: 'log',
            level: 'warn',
            message: `adding Bucardo's triggers deadlocked with the application (attempt ${attempt}); retrying`,
          });
          await new Promise((r) => setTimeout(r, 500 * attempt));
        }
      }
      if (ctx.opts.bucardoParallelCopy) {
        // pgrelocate's copy must start after every change is being recorded: the delta triggers first.
        const triggers = await withClient(ctx.source, 'source', (c) =>
          c.query<{ n: number }>(
            `SELECT count(DISTINCT tgrelid)::int AS n FROM pg_trigger WHERE tgname LIKE 'bucardo%' AND NOT tgisinternal`,
          ),
        );
        if ((triggers.rows[0]?.n ?? 0) < keyed.length)
          throw new PgrelocateError(
            'bucardo-triggers-missing',
            `Bucardo put its delta triggers on ${triggers.rows[0]?.n ?? 0} of ${keyed.length} source tables; the parallel copy needs them all first.`,
            `Run without --bucardo-parallel-copy (Bucardo's own first copy), or check Bucardo's log in ${b.dir}.`,
          );
      }
      // Generated columns cannot be named in COPY: select the others (the target computes them).
      const custom = await withClient(ctx.source, 'source', (c) => generatedColumnLists(c, keyed));
      for (const [t, select] of custom) await ctx.control.run(['add', 'customcols', t, select]);
      return { tables: keyed.length, sequences: seqs.length, fullCopy: b.fullCopy, customcols: [...custom.keys()] };
    },
  },
  {
    name: 'onetimecopy',
    what: "Bucardo's daemon started; its first full copy, with progress",
    async run(ctx, emit) {
      const b = ctx.meta.bucardo;
      const t0 = Date.now();
      await ctx.control.startOrReload('pgrelocate sync');
      const keyed = publishedTables(ctx.pre.source.database.tables).filter((t) => t.primaryKey.length > 0);
      const total = keyed.reduce((s, t) => s + t.bytes, 0);
      const meter = new ProgressMeter(emit, 'onetimecopy', Math.max(1, total), 'bytes');
      const dst = await connect(ctx.target, 'target');
      let badSince: number | null = null;
      try {
        for (;;) {
          const otc = await ctx.control.sql((c) =>
            c.query<{ o: number }>(`SELECT onetimecopy AS o FROM bucardo.sync WHERE name = $1`, [b.sync]),
          );
          const status = parseStatus((await ctx.control.run(['status', b.sync], { allowExit: [1] })).stdout);
          const state = status.get('Current state') ?? '';
          if (otc.rows[0]?.o === 0 && /good/i.test(state)) break;
          // A daemon that was already running loads a new sync without kicking it: kick until its first run shows.
          if (status.size === 0 || /no records/i.test(state)) await ctx.control.sql((c) => c.query(kickSql(b.sync)));
          badSince = /bad/i.test(state) ? (badSince ?? Date.now()) : null;
          if (badSince !== null && Date.now() - badSince > 30_000)
            throw new PgrelocateError(
              'bucardo-copy-failed',
              `Bucardo's first copy of sync ${b.sync} keeps failing: ${status.get('Last error') ?? state}`,
              `Fix the cause (Bucardo's log is in ${b.dir}), then rerun sync; it resumes.`,
            );
          if (Date.now() - t0 > ctx.opts.catchUpTimeout * 1000 * 10)
            throw new PgrelocateError(
              'bucardo-copy-timeout',
              `Bucardo's first copy has not finished after ${ctx.opts.catchUpTimeout * 10}s.`,
              `Rerun sync to keep waiting (it resumes), or raise ${opt('catchUpTimeout')}.`,
            );
          const copied = await dst.query<{ b: string }>(
            `SELECT coalesce(sum(pg_table_size(c.oid)), 0)::text AS b FROM pg_class c WHERE c.oid = ANY($1::regclass[])`,
            [keyed.map((t) => qualified(t))],
          );
          meter.update(Math.min(total, Number(copied.rows[0]!.b)), state);
          await new Promise((r) => setTimeout(r, 1000));
        }
      } finally {
        await dst.end().catch(() => undefined);
      }
      meter.update(Math.max(1, total), undefined, true);
      ctx.copySeconds = (Date.now() - t0) / 1000;
      return { seconds: ctx.copySeconds };
    },
  },
  {
    // --bucardo-parallel-copy: the data is in; Bucardo starts with only the changes since its triggers.
    name: 'start',
    what: "Bucardo's daemon started on the copied tables: changes since the copy's snapshot",
    async run(ctx) {
      return { daemon: await ctx.control.startOrReload('pgrelocate sync') };
    },
  },
  {
    name: 'catch-up',
    what: 'one sync run that finishes in time',
    async run(ctx, emit) {
      const t0 = Date.now();
      const r = await ctx.control.kick(ctx.meta.bucardo.sync, ctx.opts.catchUpTimeout * 1000);
      if (r !== 'done')
        emit({ type: 'log', level: 'warn', message: `Bucardo has not caught up after ${ctx.opts.catchUpTimeout}s; it keeps going` });
      ctx.meta.phase = 'streaming';
      await ctx.state.setMeta(ctx.meta);
      return { seconds: (Date.now() - t0) / 1000, caughtUp: r === 'done' };
    },
  },
];

const step = (name: string): Step<Ctx> => bucardoSteps.find((x) => x.name === name)!;
const [globalsStep, wholeSchemaStep] = schemaFirstSteps<Ctx>();
const [preData, copy, postData] = parallelCopySteps();

/** Bucardo's own single-threaded first copy (seed 004), or pgrelocate's parallel copy with Bucardo for the changes. */
export function stepsFor(parallelCopy: boolean): Step<Ctx>[] {
  return parallelCopy
    ? [globalsStep!, preData!, step('control'), step('sync-setup'), copy!, postData!, step('start'), step('catch-up')]
    : [globalsStep!, wholeSchemaStep!, step('control'), step('sync-setup'), step('onetimecopy'), step('catch-up')];
}

/** Sync with Bucardo. Idempotent: an interrupted sync resumes; a streaming one returns at once. */
export async function bucardoSync(
  source: ConnInfo,
  target: ConnInfo,
  controlUrl: ConnInfo,
  options: Partial<StreamingOptions>,
  emit: Emit = () => undefined,
): Promise<BucardoSyncReport> {
  const started = Date.now();
  // The parallel copy (--bucardo-parallel-copy) takes a plain snapshot: Bucardo's triggers, not a slot, catch the changes.
  const opts = resolveStreamingOptions({ ...options, streaming: false });
  const r = await runStreamingSync<Meta, Ctx>({
    strategy: 'bucardo',
    source,
    target,
    opts,
    emit,
    newMeta: async (runId, pre) => ({
      ...newMeta(runId, pre.source.database.name),
      bucardo: {
        ...bucardoNames(runId),
        dir: controlDir(opts.workDir, controlUrl),
        control: { host: controlUrl.host, port: controlUrl.port, user: controlUrl.user },
        installedControl: false,
        fullCopy: [],
        createdSchema: { source: !(await hasBucardoSchema(source, 'source')), target: !(await hasBucardoSchema(target, 'target')) },
      },
    }),
    context: (base) => ({ ...base, control: new BucardoControl(controlUrl, base.meta.bucardo.dir) }),
    steps: stepsFor(opts.bucardoParallelCopy),
  });
  const base = reportBase(r, started);
  if (r.alreadyStreaming) return { ...base, tables: 0, fullCopy: r.meta.bucardo.fullCopy, copySeconds: null };
  const { ctx, results } = r;
  return {
    ...base,
    tables: publishedTables(ctx.pre.source.database.tables).length,
    fullCopy: ctx.meta.bucardo.fullCopy,
    // The first data: Bucardo's onetimecopy, or pgrelocate's copy and index builds.
    copySeconds:
      ctx.copySeconds ??
      (results.some((x) => x.name === 'copy')
        ? results.filter((x) => x.name === 'copy' || x.name === 'schema-post-data').reduce((t, x) => t + x.seconds, 0)
        : null),
  };
}

/**
 * Remove Bucardo's traces from one database: its schema (delta tables,
 * functions) and, with it, its triggers. Dropping a trigger locks its table,
 * one table after another in one transaction; an application transaction
 * that reads two of them can deadlock with it (seen once, on a fenced source
 * the application still reads). It all rolls back: retried.
 */
export async function dropBucardoSchema(c: pg.Client, attempts = 5): Promise<boolean> {
  const r = await c.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'bucardo'`);
  if (r.rowCount === 0) return false;
  for (let attempt = 1; ; attempt++) {
    try {
      await c.query(`DROP SCHEMA ${ident('bucardo')} CASCADE`);
      return true;
    } catch (e) {
      if (attempt >= attempts || (e as { code?: string }).code !== '40P01') throw e;
      await new Promise((res) => setTimeout(res, 200 * attempt));
    }
  }
}
