/**
 * The parallel copy every strategy that copies rows itself shares (logical's
 * sync, bucardo --bucardo-parallel-copy, the one-time copy): roles, the
 * schema's pre-data, the rows under one snapshot with indexes built as tables
 * finish, then the rest of post-data.
 */
import { dumpFilterArgs } from '../filter';
import path from 'node:path';
import { ident, withClient } from '../conn';
import { migrateGlobals } from '../globals';
import { qualified, type TableInfo } from '../inspect';
import { runTool } from '../tool-exec';
import { PostDataPipeline } from './post-data';
import { parseToc, sourceForeignKeys, sourceIndexes, sourcePartitionedTables, splitPostData, type PostDataSplit } from './post-data-plan';
import { Slots } from './slots';
import { type Step } from '../runner';
import { copyTables, openCopySessions, type CopyResult, type CopySessions, type PartCount } from './copy';
import { dumpSchema, restoreSection, type EarlySchemaDump } from './schema';
import { ExportedSnapshot } from '../streaming/snapshot';
import { dropSlot } from '../streaming/artefacts';
import type { StreamingMeta } from '../streaming/options';
import type { StreamingRunContext } from '../streaming/run';

/** What the copy steps need; other strategies that reuse them (bucardo --parallel-copy) extend it. */
export interface CopyContext extends StreamingRunContext<StreamingMeta> {
  copy?: CopyResult;
  /** The schema dump begun during the preflight (the one-time copy's); pre-data dumps when it is absent or was never started. */
  readonly schemaDump?: EarlySchemaDump;
  /** Post-data's split, read while pre-data was restored (null: the archive could not be listed). */
  postPlan?: Promise<PostDataSplit | null>;
  /**
   * Open the copy's plain snapshot and sessions while pre-data is restored:
   * only where the copy step follows pre-data directly. Bucardo's parallel
   * copy sets up its triggers in between, and a snapshot taken before them
   * would miss the writes made meanwhile.
   */
  readonly openCopyEarly?: boolean;
  /** That snapshot and those sessions; the copy step takes them. */
  earlyCopy?: Promise<EarlyCopy>;
  post?: PostDataPipeline | null;
  /** Rows per table (qualified) by the COPY command tags, both sides: verification's counts when the source stayed still. */
  counted?: Map<string, { sent: number; taken: number }>;
  /** The copy's snapshot's transaction ids (a plain snapshot's only): see ExportedSnapshot.xids. */
  copyXids?: string | null;
}

/**
 * How post-data splits for a copy: per-table indexes as tables finish. Null
 * (whole post-data after the copy) when the schema dump cannot be listed.
 * It reads the source and the local archive only, so it runs while pre-data
 * is restored on the target.
 */
async function postDataPlan(ctx: CopyContext, tables: readonly TableInfo[]): Promise<PostDataSplit | null> {
  // The post-data section only, every entry of it: what the pipeline does not take is restored at the end.
  const list = await runTool(ctx.tools.pgRestore, ['-l', '--section=post-data', ctx.schemaFile], [], { captureStdout: true });
  if (list.exitCode !== 0) return null;
  const [indexes, foreignKeys, partitioned] = await withClient(
    ctx.source,
    'source',
    async (c) => [await sourceIndexes(c), await sourceForeignKeys(c), await sourcePartitionedTables(c)] as const,
  );
  const copied = new Set(tables.map((t) => `${t.schema}.${t.name}`));
  return {
    ...splitPostData(parseToc(list.stdout), indexes, copied, foreignKeys),
    // Analyzed by the pipeline only when every leaf is copied by it; the others at the end.
    partitioned: partitioned.filter((p) => p.leaves.every((l) => copied.has(l))),
  };
}

/** A plain snapshot and the copy's sessions in it, opened before the copy step needs them. */
interface EarlyCopy {
  readonly snap: ExportedSnapshot;
  readonly sessions: CopySessions;
}

/**
 * Open the copy's snapshot and sessions while pre-data is restored: over a
 * link of 20 ms they cost about 0.2 s of round trips, which the target's
 * restore then hides. A failure is the copy step's to report.
 */
function openEarlyCopy(ctx: CopyContext): Promise<EarlyCopy> {
  const opening = (async () => {
    const snap = await ExportedSnapshot.plain(ctx.source);
    try {
      return { snap, sessions: await openCopySessions(ctx.source, ctx.target, snap.name, Math.max(1, ctx.opts.jobs)) };
    } catch (e) {
      await snap.close();
      throw e;
    }
  })();
  opening.catch(() => undefined); // awaited by the copy step, or released
  return opening;
}

async function closeEarlyCopy(e: { readonly snap: ExportedSnapshot | null; readonly sessions: CopySessions | null }): Promise<void> {
  const sessions = e.sessions ? [...e.sessions.sources, ...e.sessions.targets] : [];
  await Promise.all([e.snap?.close(), ...sessions.map((c) => c.end().catch(() => undefined))]);
}

/** The early snapshot and sessions, now the copy step's (null when none were opened). */
async function takeEarlyCopy(ctx: CopyContext): Promise<EarlyCopy | null> {
  const opening = ctx.earlyCopy;
  ctx.earlyCopy = undefined;
  return opening ? await opening : null;
}

/**
 * Close the early snapshot and sessions when the copy step never took them
 * (pre-data failed, or the run stopped between the steps).
 */
export async function releaseEarlyCopy(ctx: CopyContext): Promise<void> {
  const opening = ctx.earlyCopy;
  ctx.earlyCopy = undefined;
  const e = await opening?.catch(() => null);
  if (e) await closeEarlyCopy(e);
}

/** The tables the copy step copies. */
function copiedTables(ctx: CopyContext): TableInfo[] {
  return ctx.pre.source.database.tables.filter((t) => t.kind === 'r');
}

const globalsStep: Step<CopyContext> = {
  name: 'globals',
  what: 'roles and memberships, the target admin role left untouched',
  run: (ctx, emit) => migrateGlobals({ ...ctx, skip: ctx.opts.skipGlobals }, emit),
};

const [preDataStep, copyStep, postDataStep] = ((): Step<CopyContext>[] => [
  {
    name: 'schema-pre-data',
    what: 'types, tables, functions and views (pg_dump --schema-only, pre-data section)',
    async run(ctx, emit) {
      await (ctx.schemaDump?.done ?? dumpSchema(ctx.tools, ctx.source, ctx.schemaFile, dumpFilterArgs(ctx.pre.facts.filterPlan)));
      // Read beside the restore (about 0.2 s of round trips over a link of 20 ms); the copy step builds on it.
      const plan = postDataPlan(ctx, copiedTables(ctx));
      plan.catch(() => undefined); // awaited below, or by the copy step when the restore fails first
      ctx.postPlan = plan;
      if (ctx.doneBefore.has('schema-pre-data')) return { skipped: 'restored by the interrupted attempt' };
      // The copy's snapshot and sessions too, where the caller allows it (a plain snapshot; a slot's waits for the copy step).
      if (ctx.openCopyEarly && !ctx.opts.streaming && !ctx.resumed) ctx.earlyCopy = openEarlyCopy(ctx);
      try {
        const errors = await restoreSection(
          ctx.tools,
          ctx.target,
          ctx.schemaFile,
          'pre-data',
          { jobs: ctx.opts.jobs, force: ctx.opts.force, resumed: ctx.resumed, source: ctx.source },
          emit,
        );
        await plan;
        return { expectedErrors: errors.length };
      } catch (e) {
        await releaseEarlyCopy(ctx);
        throw e;
      }
    },
  },
  {
    name: 'copy',
    what: "{jobs} parallel COPY streams under one snapshot (the slot's when streaming), large tables split in ranges",
    async run(ctx, emit) {
      // Opened while pre-data was restored (a plain snapshot's run), and closed here if the copy never takes them.
      const early = await takeEarlyCopy(ctx);
      // What of them is still this step's to close: the snapshot until the inner try takes it, the sessions until copyTables does.
      let earlySnap = early?.snap ?? null;
      let earlySessions = early?.sessions ?? null;
      try {
        const all = copiedTables(ctx);
        // One budget of --jobs slots for copy streams and index builds together.
        const slots = new Slots(Math.max(1, ctx.opts.jobs));
        const plan = await (ctx.postPlan ?? postDataPlan(ctx, all));
        ctx.post = plan
          ? new PostDataPipeline(ctx.tools, ctx.target, ctx.schemaFile, path.dirname(ctx.schemaFile), plan, slots, ctx.resumed, emit)
          : null;
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
        const snap =
          earlySnap ??
          (ctx.opts.streaming ? await ExportedSnapshot.create(ctx.source, ctx.meta.names.slot) : await ExportedSnapshot.plain(ctx.source));
        earlySnap = null;
        try {
          ctx.meta.snapshotLsn = snap.lsn;
          ctx.copyXids = snap.xids;
          const counted = (ctx.counted = new Map());
          await ctx.state.setMeta(ctx.meta);
          const sessions = earlySessions;
          earlySessions = null;
          ctx.copy = await copyTables(
            ctx.source,
            ctx.target,
            snap.name,
            all,
            {
              jobs: ctx.opts.jobs,
              splitBytes: ctx.opts.splitBytes,
              sourceVersionNum: ctx.pre.source.server.versionNum,
              onPartCounted: (t: TableInfo, n: PartCount) => {
                const k = qualified(t);
                const was = counted.get(k) ?? { sent: 0, taken: 0 };
                counted.set(k, { sent: was.sent + n.sent, taken: was.taken + n.taken });
              },
              ...(post ? { slots, onTableCopied: (t: TableInfo) => post.tableCopied(`${t.schema}.${t.name}`, qualified(t), t.bytes) } : {}),
              ...(sessions ? { sessions } : {}),
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
      } finally {
        if (earlySnap || earlySessions) await closeEarlyCopy({ snap: earlySnap, sessions: earlySessions });
      }
    },
  },
  {
    name: 'schema-post-data',
    what: 'indexes, constraints, foreign keys, triggers, {jobs} at a time, each table as soon as it is copied',
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
])();

/** Roles: the first step of every strategy. */
export function globalsSteps<C extends CopyContext>(): Step<C>[] {
  return [globalsStep as Step<C>];
}

/**
 * Schema pre-data, the parallel copy under one snapshot (exported from the
 * run's slot when `opts.streaming`, a plain one otherwise) with indexes built
 * as tables finish, then the rest of post-data.
 */
export function parallelCopySteps<C extends CopyContext>(): Step<C>[] {
  return [preDataStep!, copyStep!, postDataStep!] as Step<C>[];
}
