/**
 * `pgrelocate copy`: the parallel copy once, with no slot and no streaming,
 * finished like a cutover (sequences, large objects, materialized views,
 * database settings) and verified.
 */
import { opt } from '../option-names';
import { withRunLock } from '../run-lock';
import path from 'node:path';
import type pg from 'pg';
import { connect, describe, openSessions, withClient, type ConnInfo } from '../conn';
import type { Finding } from '../check';
import { PgrelocateError } from '../errors';
import { analyzeMissing } from '../analyze';
import { preflight, requireReady } from '../preflight';
import { runSteps, type Emit, type Step, type StepResult } from '../runner';
import { withRunState, withScratchDir } from '../run';
import { globalsSteps, parallelCopySteps, releaseEarlyCopy, type CopyContext } from './steps';
import { EarlySchemaDump } from './schema';
import { dumpFilterArgs } from '../filter';
import { applyDatabaseSettings } from '../database-settings';
import { snapshotUnchanged, verify } from '../verify';
import { type CopyResult } from './copy';
import { copyLargeObjects, refreshMatviews, setSequences } from '../streaming/cutover-steps';
import { readSequences, type SequenceValue } from '../sequences';
import { newMeta, resolveStreamingOptions, type StreamingMeta, type StreamingOptions } from '../streaming/options';

/** The one-time copy's context: the copy steps', and the part of finishing begun beside post-data. */
interface OnceContext extends CopyContext {
  /** Finishing's sessions and early reads; verification reads on the same sessions, and the run's end closes them. */
  earlyFinish?: Promise<EarlyFinish>;
}

/** What finishing begins beside post-data: the source's sequence values, large objects copied, its two sessions still open. */
interface EarlyFinish {
  readonly src: pg.Client;
  readonly dst: pg.Client;
  readonly sequences: readonly SequenceValue[];
  readonly largeObjects: number;
}

/**
 * Finishing begun beside post-data: the sessions, the source's sequence
 * values, the large objects. None waits for an index or a constraint, and
 * over a link of 20 ms their round trips cost about 0.3 s, which the index
 * builds then hide. The sequences are set on the target only after post-data:
 * an index expression may call nextval there.
 */
function beginFinish(ctx: OnceContext): Promise<EarlyFinish> {
  const begun = (async () => {
    const [src, dst] = await openSessions([() => connect(ctx.source, 'source'), () => connect(ctx.target, 'target')]);
    try {
      const sequences = await readSequences(src!, ctx.opts.filter);
      const los = await copyLargeObjects(src!, dst!);
      return { src: src!, dst: dst!, sequences, largeObjects: los.count };
    } catch (e) {
      await Promise.all([src!.end(), dst!.end()].map((p) => p.catch(() => undefined)));
      throw e;
    }
  })();
  begun.catch(() => undefined); // the finish step's to report
  return begun;
}

/** Close what beginFinish opened, when the run ends: after verification, or after whichever step failed. */
async function releaseFinishSessions(ctx: OnceContext): Promise<void> {
  const begun = ctx.earlyFinish;
  ctx.earlyFinish = undefined;
  const e = await begun?.catch(() => null);
  if (e) await Promise.all([e.src.end(), e.dst.end()].map((p) => p.catch(() => undefined)));
}

const [globalsStep, preDataStep, copyStep, postDataStep] = [...globalsSteps<OnceContext>(), ...parallelCopySteps<OnceContext>()];

/** The one-time copy: what a sync does, without slot, publication or subscription, then finished like a cutover. */
const COPY_STEPS: Step<OnceContext>[] = [
  globalsStep!,
  preDataStep!,
  copyStep!,
  {
    ...postDataStep!,
    run(ctx, emit) {
      ctx.earlyFinish = beginFinish(ctx);
      return postDataStep!.run(ctx, emit);
    },
  },
  {
    name: 'finish',
    what: 'large objects (begun beside post-data), sequences, materialized views, statistics, database settings',
    async run(ctx, emit) {
      const { src, dst, sequences: values, largeObjects } = await (ctx.earlyFinish ??= beginFinish(ctx));
      const sequences = await setSequences(dst, values);
      const matviews = await refreshMatviews(src, dst, ctx.opts.filter);
      // Tables the pipeline did not analyze (no indexes, partitioned parents) and the refreshed materialized views.
      const analyzed = await analyzeMissing(ctx.target, ctx.opts.jobs, emit, 'finish');
      // ALTER DATABASE … SET and the rest: after the data, so no setting of the source's applies to the copy itself.
      const settings = await applyDatabaseSettings(src, dst, ctx.pre.target.database.name, emit);
      return {
        sequences,
        largeObjects,
        matviews,
        analyzed: (ctx.post?.analyzed ?? 0) + analyzed,
        databaseSettings: settings.applied,
      };
    },
  },
  {
    name: 'verify',
    what: "row counts (by COPY's command tags while the source stayed still), or checksums with --verify checksum, of every table",
    async run(ctx, emit) {
      if (ctx.opts.verify === 'none') return { skipped: true };
      // Finishing's two sessions (open until the run ends) rather than two new connections.
      const finished = await ctx.earlyFinish;
      // The copy's own counts stand for the tables' when nothing was written on the source since its snapshot
      // (verify checks that first); otherwise every table is counted again on both sides, which catches writes
      // the copy missed.
      const v = await verify(ctx.source, ctx.target, {
        mode: ctx.opts.verify,
        jobs: ctx.opts.jobs,
        matviews: false,
        ...(ctx.opts.filter ? { filter: ctx.opts.filter } : {}),
        ...(ctx.copyXids && ctx.counted ? { counted: { tables: ctx.counted, since: ctx.copyXids } } : {}),
        ...(finished ? { sessions: { source: finished.src, target: finished.dst } } : {}),
      });
      if (v.sourceChanged)
        emit({
          type: 'log',
          level: 'info',
          message: "verify: transactions ran on the source's server since the copy's snapshot; every table was counted again on both sides",
        });
      if (!v.ok) {
        throw new PgrelocateError(
          'verify-failed',
          `Verification found ${v.mismatches.length} difference(s):\n  ${v.mismatches.slice(0, 10).join('\n  ')}`,
          `Writes reached the source during the copy (stop them for a one-time copy), or the copy failed; rerun with ${opt('force')}.`,
          v,
        );
      }
      return { mode: v.mode, tables: v.tables.length, rows: v.rows, countedByCopy: v.countedByCopy };
    },
  },
];

/** Whether nothing was written on the source's server since the snapshot whose transaction ids are `xids` (see snapshotUnchanged). */
export async function sourceUnchanged(source: ConnInfo, xids: string): Promise<boolean> {
  return withClient(source, 'source', (c) => snapshotUnchanged(c, xids));
}

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
  options: Partial<StreamingOptions>,
  emit: Emit = () => undefined,
): Promise<CopyReport> {
  return withRunLock(target, 'copy', () => copyOnceLocked(source, target, options, emit));
}

async function copyOnceLocked(
  source: ConnInfo,
  target: ConnInfo,
  options: Partial<StreamingOptions>,
  emit: Emit = () => undefined,
): Promise<CopyReport> {
  const started = Date.now();
  const opts = resolveStreamingOptions({ ...options, streaming: false });
  // The scratch directory is made before the preflight, which may begin the schema dump into it.
  return withScratchDir(opts.workDir, `pgrelocate-schema-copy-${process.pid}-${Date.now().toString(36)}`, async (dir) => {
    const schemaDump = new EarlySchemaDump(source, path.join(dir, 'schema.dump'));
    try {
      const pre = await preflight(source, target, {
        strategy: 'dump-restore',
        force: opts.force,
        workDir: opts.workDir,
        writesDump: false,
        ...(opts.filter ? { filter: opts.filter } : {}),
        onSourceKnown: (_s, tools, filterPlan) => schemaDump.start(tools, dumpFilterArgs(filterPlan)),
      });
      const tools = requireReady(pre);
      return await copyWithState({ source, target, pre, tools, opts }, schemaDump, started, emit);
    } finally {
      await schemaDump.stop();
    }
  });
}

/** The run after a passed preflight: its state on the target, the steps, the report. */
async function copyWithState(
  run: Pick<OnceContext, 'source' | 'target' | 'pre' | 'tools' | 'opts'>,
  schemaDump: EarlySchemaDump,
  started: number,
  emit: Emit,
): Promise<CopyReport> {
  const { pre, opts } = run;
  return withRunState(
    run.target,
    { create: { strategy: 'copy', source: describe(run.source) } },
    async (state) => {
      const meta: StreamingMeta = { ...newMeta(state.runId, pre.source.database.name), ...(opts.filter ? { filter: opts.filter } : {}) };
      const ctx: OnceContext = {
        ...run,
        state,
        meta,
        resumed: false,
        doneBefore: new Set(),
        schemaFile: schemaDump.file,
        schemaDump,
        // The copy step follows pre-data directly here.
        openCopyEarly: true,
      };
      const results = await runSteps(COPY_STEPS, ctx, emit, state).finally(() =>
        Promise.all([releaseEarlyCopy(ctx), releaseFinishSessions(ctx)]),
      );
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
    },
    (state) => state.setPhase('copy', 'failed'),
  );
}
