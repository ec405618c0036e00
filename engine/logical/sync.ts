/**
 * `sync` (copy, then stream) and `copy` (once): the steps, the resume logic,
 * and the post-data pipeline hooked into the copy.
 */
import { opt } from '../option-names';
import { withRunLock } from '../run-lock';
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { connect, describe, ident, withClient, type ConnInfo } from '../conn';
import type { Finding } from '../check';
import { fullCopyTables, tablesWithoutIdentity } from '../check';
import { migrateGlobals } from '../dump-restore';
import { PgrelocateError } from '../errors';
import { analyzeMissing } from '../analyze';
import { qualified, type TableInfo } from '../inspect';
import { runTool } from '../tool-exec';
import { parseToc, PostDataPipeline, sourceForeignKeys, sourceIndexes, sourcePartitionedTables, splitPostData } from './post-data';
import { Slots } from './slots';
import { preflight, requireReady, type Preflight } from '../preflight';
import { runSteps, type Emit, type Step, type StepResult } from '../runner';
import { RunState } from '../state';
import type { ClientTools } from '../tools';
import { applyDatabaseSettings } from '../database-settings';
import { verify } from '../verify';
import { copyTables, type CopyResult } from './copy';
import { copyLargeObjects, refreshMatviews, syncSequences } from './cutover-steps';
import { dumpSchema, restoreSection } from './schema';
import { createPublicationSql, ExportedSnapshot, publishedTables, type LogicalNames } from './snapshot';
import { createSubscription, sourceLag, waitForLsn, type Lag } from './subscription';
import { dropSlot } from './artefacts';
import { reportBase, runStreamingSync } from './streaming-run';
import { newMeta, resolveLogicalOptions, type LogicalMeta, type LogicalOptions } from './run-options';

export interface SyncReport {
  readonly runId: string;
  readonly resumed: boolean;
  readonly alreadyStreaming: boolean;
  readonly steps: readonly StepResult[];
  readonly copy: CopyResult | null;
  readonly catchUpSeconds: number | null;
  /** WAL written on the source between the snapshot and the subscription: what catch-up applied. */
  readonly backlogBytes: number | null;
  readonly lag: Lag | null;
  readonly findings: readonly Finding[];
  readonly seconds: number;
}

/** What the copy steps need; other strategies that reuse them (bucardo --parallel-copy) extend it. */
export interface SyncContext {
  readonly source: ConnInfo;
  readonly target: ConnInfo;
  readonly pre: Preflight;
  readonly tools: ClientTools;
  readonly opts: LogicalOptions;
  readonly state: RunState;
  readonly meta: LogicalMeta;
  readonly resumed: boolean;
  readonly doneBefore: ReadonlySet<string>;
  readonly schemaFile: string;
  copy?: CopyResult;
  post?: PostDataPipeline | null;
  catchUpSeconds?: number;
  backlogBytes?: number;
}

/**
 * The post-data pipeline for a copy: per-table indexes as tables finish. Null
 * (whole post-data after the copy) when the schema dump cannot be listed.
 */
async function pipelineFor(ctx: SyncContext, tables: readonly TableInfo[], slots: Slots, emit: Emit): Promise<PostDataPipeline | null> {
  // The post-data section only, every entry of it: what the pipeline does not take is restored at the end.
  const list = await runTool(ctx.tools.pgRestore, ['-l', '--section=post-data', ctx.schemaFile], [], { captureStdout: true });
  if (list.exitCode !== 0) return null;
  const [indexes, foreignKeys, partitioned] = await withClient(
    ctx.source,
    'source',
    async (c) => [await sourceIndexes(c), await sourceForeignKeys(c), await sourcePartitionedTables(c)] as const,
  );
  const copied = new Set(tables.map((t) => `${t.schema}.${t.name}`));
  const split = {
    ...splitPostData(parseToc(list.stdout), indexes, copied, foreignKeys),
    // Analyzed by the pipeline only when every leaf is copied by it; the others at the end.
    partitioned: partitioned.filter((p) => p.leaves.every((l) => copied.has(l))),
  };
  return new PostDataPipeline(ctx.tools, ctx.target, ctx.schemaFile, path.dirname(ctx.schemaFile), split, slots, ctx.resumed, emit);
}

const steps: Step<SyncContext>[] = [
  {
    name: 'globals',
    run: (ctx, emit) => migrateGlobals({ ...ctx, skip: ctx.opts.skipGlobals }, emit),
  },
  {
    name: 'schema-pre-data',
    async run(ctx, emit) {
      await dumpSchema(ctx.tools, ctx.source, ctx.schemaFile);
      if (ctx.doneBefore.has('schema-pre-data')) return { skipped: 'restored by the interrupted attempt' };
      const errors = await restoreSection(
        ctx.tools,
        ctx.target,
        ctx.schemaFile,
        'pre-data',
        { jobs: ctx.opts.jobs, force: ctx.opts.force, resumed: ctx.resumed },
        emit,
      );
      return { expectedErrors: errors.length };
    },
  },
  {
    name: 'replica-identity',
    async run(ctx, emit) {
      const whole = new Set(fullCopyTables(ctx.pre.source));
      const tables = tablesWithoutIdentity(ctx.pre.source).filter((t) => !whole.has(t));
      if (tables.length === 0 || !ctx.opts.replicaIdentityFull) return { changed: [] };
      await withClient(ctx.source, 'source', async (c) => {
        for (const t of tables) {
          if (ctx.meta.replicaIdentityChanged.includes(t)) continue;
          await c.query(`ALTER TABLE ${t} REPLICA IDENTITY FULL`);
          ctx.meta.replicaIdentityChanged.push(t);
          await ctx.state.setMeta(ctx.meta);
        }
      });
      emit({
        type: 'log',
        level: 'warn',
        message: `REPLICA IDENTITY FULL set on the source for ${tables.join(', ')} (restored at cleanup)`,
      });
      return { changed: tables };
    },
  },
  {
    name: 'publication',
    async run(ctx, emit) {
      // Only with --replica-identity-full: without it, check refuses every key-less table.
      const whole = ctx.opts.replicaIdentityFull ? fullCopyTables(ctx.pre.source) : [];
      if (!ctx.meta.fullCopy && whole.length > 0) {
        ctx.meta.fullCopy = whole;
        await ctx.state.setMeta(ctx.meta);
        emit({
          type: 'log',
          level: 'warn',
          message: `not published (no key, and a column REPLICA IDENTITY FULL cannot compare); copied again in full at cutover: ${whole.join(', ')}`,
        });
      }
      const skip = new Set(ctx.meta.fullCopy ?? []);
      const tables = publishedTables(ctx.pre.source.database.tables).filter((t) => !skip.has(qualified(t)));
      await withClient(ctx.source, 'source', async (c) => {
        const exists = await c.query(`SELECT 1 FROM pg_publication WHERE pubname = $1`, [ctx.meta.names.publication]);
        if (exists.rowCount === 0) await c.query(createPublicationSql(ctx.meta.names.publication, tables));
      });
      return { publication: ctx.meta.names.publication, tables: tables.length };
    },
  },
  {
    name: 'copy',
    async run(ctx, emit) {
      const all = ctx.pre.source.database.tables.filter((t) => t.kind === 'r');
      // One budget of --jobs slots for copy streams and index builds together.
      const slots = new Slots(Math.max(1, ctx.opts.jobs));
      ctx.post = await pipelineFor(ctx, all, slots, emit);
      const post = ctx.post;
      if (ctx.resumed) {
        // The interrupted attempt's snapshot died with its connection: start over from a new one.
        await withClient(ctx.source, 'source', (c) => dropSlot(c, ctx.meta.names.slot));
        await withClient(ctx.target, 'target', async (c) => {
          // Foreign keys that attempt added would check (and refuse) rows copied before the ones they reference.
          for (const fk of post?.foreignKeys ?? [])
            await c.query(`ALTER TABLE ONLY ${fk.qualifiedTable} DROP CONSTRAINT IF EXISTS ${ident(fk.constraint)}`);
          if (all.length > 0) await c.query(`TRUNCATE ${all.map((t) => qualified(t)).join(', ')}`);
        });
        emit({ type: 'log', level: 'info', message: 'resuming: target tables truncated, copying again from a new snapshot' });
      }
      const snap = ctx.opts.streaming
        ? await ExportedSnapshot.create(ctx.source, ctx.meta.names.slot)
        : await ExportedSnapshot.plain(ctx.source);
      try {
        ctx.meta.snapshotLsn = snap.lsn;
        await ctx.state.setMeta(ctx.meta);
        ctx.copy = await copyTables(
          ctx.source,
          ctx.target,
          snap.name,
          all,
          {
            jobs: ctx.opts.jobs,
            splitBytes: ctx.opts.splitBytes,
            sourceVersionNum: ctx.pre.source.server.versionNum,
            ...(post ? { slots, onTableCopied: (t: TableInfo) => post.tableCopied(`${t.schema}.${t.name}`, qualified(t)) } : {}),
          },
          emit,
        );
      } catch (e) {
        await ctx.post?.close();
        throw e;
      } finally {
        await snap.close();
      }
      return { ...ctx.copy, snapshotLsn: snap.lsn };
    },
  },
  {
    name: 'schema-post-data',
    async run(ctx, emit) {
      if (ctx.post) {
        // Per-table indexes were built during the copy; finish them, then the rest.
        const errors = await ctx.post.finish();
        return { pipelined: true, expectedErrors: errors.filter((e) => e.expected).length };
      }
      const errors = await restoreSection(
        ctx.tools,
        ctx.target,
        ctx.schemaFile,
        'post-data',
        { jobs: ctx.opts.jobs, force: false, resumed: ctx.resumed },
        emit,
      );
      return { expectedErrors: errors.length };
    },
  },
  {
    name: 'subscribe',
    async run(ctx) {
      await withClient(ctx.target, 'target', async (c) => {
        const exists = await c.query(`SELECT 1 FROM pg_subscription WHERE subname = $1`, [ctx.meta.names.subscription]);
        if (exists.rowCount === 0) await createSubscription(c, ctx.meta.names, ctx.opts.sourceForTarget ?? ctx.source);
      });
      ctx.meta.phase = 'streaming';
      await ctx.state.setMeta(ctx.meta);
      return { subscription: ctx.meta.names.subscription };
    },
  },
  {
    name: 'catch-up',
    async run(ctx, emit) {
      // Catch-up = the backlog that built up during the copy is applied: the target confirms the
      // source's position as of now. Then report how far behind it is.
      const t0 = Date.now();
      const r = await withClient(ctx.source, 'source', async (c) => {
        const row = (
          await c.query<{ lsn: string; backlog: string | null }>(
            `SELECT pg_current_wal_lsn()::text AS lsn, pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::bigint::text AS backlog`,
            [ctx.meta.snapshotLsn ?? '0/0'],
          )
        ).rows[0]!;
        const caughtUp = await waitForLsn(c, ctx.meta.names, row.lsn, ctx.opts.catchUpTimeout * 1000);
        return { ...row, caughtUp };
      });
      ctx.catchUpSeconds = (Date.now() - t0) / 1000;
      ctx.backlogBytes = Number(r.backlog ?? 0);
      if (!r.caughtUp) {
        emit({ type: 'log', level: 'warn', message: `the backlog is not applied after ${ctx.opts.catchUpTimeout}s; streaming continues` });
      }
      const lag = await withClient(ctx.source, 'source', (c) => sourceLag(c, ctx.meta.names));
      return { seconds: ctx.catchUpSeconds, backlogBytes: Number(r.backlog ?? 0), caughtUp: r.caughtUp, lagBytes: lag?.bytes ?? null };
    },
  },
];

const byName = (name: string): Step<SyncContext> => steps.find((s) => s.name === name)!;

/**
 * Schema pre-data, the parallel copy under one snapshot (a plain one when
 * `opts.streaming` is false) with indexes built as tables finish, then the
 * rest of post-data: for strategies that bring their own change capture.
 */
export function parallelCopySteps(): Step<SyncContext>[] {
  return [byName('schema-pre-data'), byName('copy'), byName('schema-post-data')];
}

/** The one-time copy: what a sync does, without slot, publication or subscription, then finished like a cutover. */
const COPY_STEPS: Step<SyncContext>[] = [
  byName('globals'),
  byName('schema-pre-data'),
  byName('copy'),
  byName('schema-post-data'),
  {
    name: 'finish',
    async run(ctx, emit) {
      const src = await connect(ctx.source, 'source');
      const dst = await connect(ctx.target, 'target');
      try {
        const sequences = await syncSequences(src, dst);
        const los = await copyLargeObjects(src, dst);
        const matviews = await refreshMatviews(src, dst);
        // Tables the pipeline did not analyze (no indexes, partitioned parents) and the refreshed materialized views.
        const analyzed = await analyzeMissing(ctx.target, ctx.opts.jobs, emit);
        // ALTER DATABASE … SET and the rest: after the data, so no setting of the source's applies to the copy itself.
        const settings = await applyDatabaseSettings(ctx.source, ctx.target, ctx.pre.target.database.name, emit);
        return {
          sequences,
          largeObjects: los.count,
          matviews,
          analyzed: (ctx.post?.analyzed ?? 0) + analyzed,
          databaseSettings: settings.applied,
        };
      } finally {
        await Promise.all([src.end(), dst.end()].map((p) => p.catch(() => undefined)));
      }
    },
  },
  {
    name: 'verify',
    async run(ctx) {
      if (ctx.opts.verify === 'none') return { skipped: true };
      const v = await verify(ctx.source, ctx.target, { mode: ctx.opts.verify, jobs: ctx.opts.jobs, matviews: false });
      if (!v.ok) {
        throw new PgrelocateError(
          'verify-failed',
          `Verification found ${v.mismatches.length} difference(s):\n  ${v.mismatches.slice(0, 10).join('\n  ')}`,
          `Writes reached the source during the copy (stop them for a one-time copy), or the copy failed; rerun with ${opt('force')}.`,
          v,
        );
      }
      return { mode: v.mode, tables: v.tables.length, rows: v.rows };
    },
  },
];

export interface CopyReport {
  readonly runId: string;
  readonly steps: readonly StepResult[];
  readonly copy: CopyResult | null;
  readonly seconds: number;
  readonly findings: readonly Finding[];
}

/**
 * `pgrelocate copy`: schema, data under one snapshot, indexes, sequences, large
 * objects and materialized views, verified — once, with no streaming. Writes
 * made on the source during the copy are not carried: stop them, or use sync.
 */
export async function copyOnce(
  source: ConnInfo,
  target: ConnInfo,
  options: Partial<LogicalOptions>,
  emit: Emit = () => undefined,
): Promise<CopyReport> {
  return withRunLock(target, 'copy', () => copyOnceLocked(source, target, options, emit));
}

async function copyOnceLocked(
  source: ConnInfo,
  target: ConnInfo,
  options: Partial<LogicalOptions>,
  emit: Emit = () => undefined,
): Promise<CopyReport> {
  const started = Date.now();
  const opts = resolveLogicalOptions({ ...options, streaming: false });
  const pre = await preflight(source, target, { strategy: 'dump-restore', force: opts.force, workDir: opts.workDir, writesDump: false });
  const tools = requireReady(pre);
  const stateClient = await connect(target, 'target');
  const state = await RunState.create(stateClient, 'copy', describe(source));
  const meta: LogicalMeta = newMeta(state.runId, pre.source.database.name);
  const schemaDir = scratchDir(opts.workDir, state.runId);
  const ctx: SyncContext = {
    source,
    target,
    pre,
    tools,
    opts,
    state,
    meta,
    resumed: false,
    doneBefore: new Set(),
    schemaFile: path.join(schemaDir, 'schema.dump'),
  };
  try {
    const results = await runSteps(COPY_STEPS, ctx, emit, state);
    const report: CopyReport = {
      runId: state.runId,
      steps: results,
      copy: ctx.copy ?? null,
      seconds: (Date.now() - started) / 1000,
      findings: pre.findings,
    };
    meta.phase = 'done';
    await state.setMeta(meta);
    await state.finish('done', report);
    return report;
  } catch (e) {
    await state.setPhase('copy', 'failed').catch(() => undefined);
    throw e;
  } finally {
    rmSync(schemaDir, { recursive: true, force: true });
    await stateClient.end().catch(() => undefined);
  }
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

/** A scratch directory for a run's schema dump (removed when the run step ends). */
function scratchDir(workDir: string, runId: string): string {
  const dir = path.join(workDir, `pgrelocate-schema-${runId}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Copy, then stream. Idempotent: an interrupted sync resumes; a streaming one returns at once. */
export async function sync(
  source: ConnInfo,
  target: ConnInfo,
  options: Partial<LogicalOptions>,
  emit: Emit = () => undefined,
): Promise<SyncReport> {
  const started = Date.now();
  const r = await runStreamingSync<LogicalMeta, SyncContext>({
    strategy: 'logical',
    source,
    target,
    opts: resolveLogicalOptions(options),
    emit,
    newMeta: (runId, pre) => newMeta(runId, pre.source.database.name),
    context: (base) => base,
    steps,
  });
  const meta = r.alreadyStreaming ? r.meta : r.ctx.meta;
  const lag = await withClient(source, 'source', (c) => sourceLag(c, meta.names));
  const base = reportBase(r, started);
  if (r.alreadyStreaming) return { ...base, copy: null, catchUpSeconds: null, backlogBytes: null, lag };
  const { ctx } = r;
  return {
    ...base,
    copy: ctx.copy ?? null,
    catchUpSeconds: ctx.catchUpSeconds ?? null,
    backlogBytes: ctx.backlogBytes ?? null,
    lag,
  };
}
