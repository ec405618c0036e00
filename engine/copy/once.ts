/**
 * `pgrelocate copy`: the parallel copy once, with no slot and no streaming,
 * finished like a cutover (sequences, large objects, materialized views,
 * database settings) and verified.
 */
import { opt } from '../option-names';
import { withRunLock } from '../run-lock';
import path from 'node:path';
import { connect, describe, withClient, type ConnInfo } from '../conn';
import type { Finding } from '../check';
import { PgrelocateError } from '../errors';
import { analyzeMissing } from '../analyze';
import { preflight, requireReady } from '../preflight';
import { runSteps, type Emit, type Step, type StepResult } from '../runner';
import { withRunState, withScratchDir } from '../run';
import { globalsSteps, parallelCopySteps, releaseEarlyCopy, type CopyContext } from './steps';
import { applyDatabaseSettings } from '../database-settings';
import { snapshotUnchanged, verify } from '../verify';
import { type CopyResult } from './copy';
import { copyLargeObjects, refreshMatviews, syncSequences } from '../streaming/cutover-steps';
import { newMeta, resolveStreamingOptions, type StreamingMeta, type StreamingOptions } from '../streaming/options';

/** The one-time copy: what a sync does, without slot, publication or subscription, then finished like a cutover. */
const COPY_STEPS: Step<CopyContext>[] = [
  ...globalsSteps<CopyContext>(),
  ...parallelCopySteps<CopyContext>(),
  {
    name: 'finish',
    what: 'sequences, large objects, materialized views, statistics, database settings',
    async run(ctx, emit) {
      const src = await connect(ctx.source, 'source');
      const dst = await connect(ctx.target, 'target');
      try {
        const sequences = await syncSequences(src, dst, ctx.opts.filter);
        const los = await copyLargeObjects(src, dst);
        const matviews = await refreshMatviews(src, dst, ctx.opts.filter);
        // Tables the pipeline did not analyze (no indexes, partitioned parents) and the refreshed materialized views.
        const analyzed = await analyzeMissing(ctx.target, ctx.opts.jobs, emit, 'finish');
        // ALTER DATABASE … SET and the rest: after the data, so no setting of the source's applies to the copy itself.
        const settings = await applyDatabaseSettings(src, dst, ctx.pre.target.database.name, emit);
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
    what: "row counts (by COPY's command tags while the source stayed still), or checksums with --verify checksum, of every table",
    async run(ctx, emit) {
      if (ctx.opts.verify === 'none') return { skipped: true };
      // The copy's own counts stand for the tables' when nothing was written on the source since its snapshot
      // (verify checks that first); otherwise every table is counted again on both sides, which catches writes
      // the copy missed.
      const v = await verify(ctx.source, ctx.target, {
        mode: ctx.opts.verify,
        jobs: ctx.opts.jobs,
        matviews: false,
        ...(ctx.opts.filter ? { filter: ctx.opts.filter } : {}),
        ...(ctx.copyXids && ctx.counted ? { counted: { tables: ctx.counted, since: ctx.copyXids } } : {}),
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
  const pre = await preflight(source, target, {
    strategy: 'dump-restore',
    force: opts.force,
    workDir: opts.workDir,
    writesDump: false,
    ...(opts.filter ? { filter: opts.filter } : {}),
  });
  const tools = requireReady(pre);
  // What every step sees of this run besides its state.
  const run = { source, target, pre, tools, opts };
  return withRunState(
    target,
    { create: { strategy: 'copy', source: describe(source) } },
    (state) =>
      withScratchDir(opts.workDir, `pgrelocate-schema-${state.runId}`, async (dir) => {
        const meta: StreamingMeta = { ...newMeta(state.runId, pre.source.database.name), ...(opts.filter ? { filter: opts.filter } : {}) };
        const ctx: CopyContext = {
          ...run,
          state,
          meta,
          resumed: false,
          doneBefore: new Set(),
          schemaFile: path.join(dir, 'schema.dump'),
          // The copy step follows pre-data directly here.
          openCopyEarly: true,
        };
        const results = await runSteps(COPY_STEPS, ctx, emit, state).finally(() => releaseEarlyCopy(ctx));
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
      }),
    (state) => state.setPhase('copy', 'failed'),
  );
}
