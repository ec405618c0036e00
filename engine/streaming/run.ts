/**
 * The life of a `sync` for every streaming strategy (logical, pglogical,
 * bucardo): find the previous run (already streaming: nothing to
 * do; interrupted during the copy: resume it), preflight, open or resume the
 * run's state, run the steps with a scratch directory for the schema dump,
 * and record how it ended.
 */
import path from 'node:path';
import type pg from 'pg';
import { describe, withClient, type ConnInfo } from '../conn';
import { applyAdditive, readShape, recordShape } from './schema-drift';
import type { Finding } from '../check';
import { PgrelocateError } from '../errors';
import { describeFilter, sameFilter } from '../filter';
import { preflight, recheck, requireReady, type Preflight } from '../preflight';
import { runSteps, type Emit, type Step, type StepResult } from '../runner';
import { withRunLock } from '../run-lock';
import { withRunState, withScratchDir } from '../run';
import { RunState, type RunRecord } from '../state';
import type { ClientTools } from '../tools';
import { previousRun, type StreamingMeta, type StreamingOptions } from './options';
import type { StreamingStrategy } from '../strategies/names';

/** What every step context of such a run holds. */
export interface StreamingRunContext<M extends StreamingMeta> {
  readonly source: ConnInfo;
  readonly target: ConnInfo;
  readonly pre: Preflight;
  readonly tools: ClientTools;
  readonly opts: StreamingOptions;
  readonly state: RunState;
  readonly meta: M;
  readonly resumed: boolean;
  readonly doneBefore: ReadonlySet<string>;
  readonly schemaFile: string;
}

export type StreamingRunResult<M extends StreamingMeta, C> =
  | { readonly alreadyStreaming: true; readonly run: RunRecord; readonly meta: M; readonly schema: SchemaSync }
  | { readonly alreadyStreaming: false; readonly ctx: C; readonly results: StepResult[] };

/** `sync` on a streaming run: the source's schema changes made on the target, and those left to the user, with why. */
export interface SchemaSync {
  readonly applied: readonly string[];
  readonly pending: readonly string[];
}

/** The report fields every streaming strategy's sync shares. */
export interface StreamingReportBase {
  /** On a run already streaming: the schema changes sync made on the target, and those it could not. */
  readonly schema: SchemaSync;
  readonly runId: string;
  readonly resumed: boolean;
  readonly alreadyStreaming: boolean;
  readonly steps: readonly StepResult[];
  readonly findings: readonly Finding[];
  readonly seconds: number;
}

/** Those fields from a run's result; an already streaming run did nothing (no steps, no time). */
export function reportBase<M extends StreamingMeta, C extends StreamingRunContext<M>>(
  r: StreamingRunResult<M, C>,
  started: number,
): StreamingReportBase {
  return r.alreadyStreaming
    ? { runId: r.run.id, resumed: false, alreadyStreaming: true, steps: [], findings: [], seconds: 0, schema: r.schema }
    : {
        schema: { applied: [], pending: [] },
        runId: r.ctx.state.runId,
        resumed: r.ctx.resumed,
        alreadyStreaming: false,
        steps: r.results,
        findings: r.ctx.pre.findings,
        seconds: (Date.now() - started) / 1000,
      };
}

/** What a streaming strategy's sync gives the driver. */
export interface StreamingSyncArgs<M extends StreamingMeta, C> {
  readonly strategy: StreamingStrategy;
  readonly source: ConnInfo;
  readonly target: ConnInfo;
  readonly opts: StreamingOptions;
  readonly emit: Emit;
  /** The meta of a new run (its artefacts' names; nothing created yet). */
  readonly newMeta: (runId: string, pre: Preflight) => M | Promise<M>;
  /** The step context, from what every run holds. */
  readonly context: (base: StreamingRunContext<M>) => C;
  readonly steps: readonly Step<C>[];
  /**
   * On a streaming run: bring tables created on the source since the copy
   * (already made on the target) into replication, their rows copied by it.
   * Without it, new tables are left to the user.
   */
  readonly addTables?: (src: pg.Client, dst: pg.Client, meta: M, tables: readonly string[]) => Promise<void>;
}

/** A sync holds the target's run lock from before it reads the previous run until it returns. */
export async function runStreamingSync<M extends StreamingMeta, C extends StreamingRunContext<M>>(
  args: StreamingSyncArgs<M, C>,
): Promise<StreamingRunResult<M, C>> {
  return withRunLock(args.target, 'sync', () => runStreamingSyncLocked(args));
}

async function runStreamingSyncLocked<M extends StreamingMeta, C extends StreamingRunContext<M>>(
  args: StreamingSyncArgs<M, C>,
): Promise<StreamingRunResult<M, C>> {
  const { strategy, source, target, opts, emit } = args;
  const prev = await previousRun(target, strategy);
  const prevMeta = (prev?.meta ?? null) as M | null;
  if (prev && prevMeta?.phase === 'streaming') {
    // Streaming already: what the source's schema gained since, made on the target too.
    const schema = await withClient(source, 'source', (s) =>
      withClient(target, 'target', (t) =>
        applyAdditive(
          s,
          t,
          prev.id,
          args.addTables ? { source, add: (tables) => args.addTables!(s, t, prevMeta, tables) } : null,
          prevMeta.filter,
        ),
      ),
    );
    for (const a of schema.applied) emit({ type: 'log', level: 'info', message: `schema: made on the target: ${a}` });
    for (const p of schema.pending) emit({ type: 'log', level: 'warn', message: `schema: not made on the target: ${p}` });
    return { alreadyStreaming: true, run: prev, meta: prevMeta, schema };
  }
  // A cutover stopped part-way is finished (or started again) by cutover; a new sync would restore over the target it filled.
  if (prev && (prevMeta?.phase === 'cutover' || prevMeta?.phase === 'switched'))
    throw new PgrelocateError(
      'cutover-incomplete',
      `Run ${prev.id}'s cutover stopped ${prevMeta.phase === 'switched' ? 'after its switch (the target holds every change; the source is fenced)' : 'inside its write fence (the fence ended with it; replication runs)'}; nothing was changed.`,
      'Run pgrelocate cutover: it takes the run up where it stopped. (pgrelocate status --source … shows whether the source is fenced.)',
    );
  const resumable = prev && prevMeta?.phase === 'copy' ? prev : null;
  // A resumed run keeps the filter it started with: another one would leave half-copied what it no longer names.
  if (resumable && opts.filter && !sameFilter(opts.filter, prevMeta?.filter))
    throw new PgrelocateError(
      'usage',
      `Run ${resumable.id} was started with the filter "${describeFilter(prevMeta?.filter)}", not "${describeFilter(opts.filter)}"; nothing was changed.`,
      'Run sync without filter options (the run uses its own), or with the same ones; or pgrelocate cleanup, then sync with the new filter.',
    );
  const filter = resumable ? prevMeta?.filter : opts.filter;
  const checkOpts = {
    strategy,
    force: opts.force || resumable !== null,
    replicaIdentityFull: opts.replicaIdentityFull,
    ...(filter ? { filter } : {}),
  };
  const pre = opts.preflight
    ? recheck(opts.preflight, checkOpts)
    : await preflight(source, target, { ...checkOpts, workDir: opts.workDir });
  for (const f of pre.findings) {
    // A resumed run's own tables are what makes the target non-empty: not a --force the user gave.
    if (f.level !== 'warning' || (f.code === 'target-not-empty' && resumable && !opts.force)) continue;
    emit({ type: 'log', level: 'warn', message: `${f.message} ${f.fix}` });
  }
  const tools = requireReady(pre);
  // What every step sees of this run besides its state and meta.
  const run = { source, target, pre, tools, opts };
  if (resumable) emit({ type: 'log', level: 'info', message: `resuming run ${resumable.id}` });
  let meta: M | null = resumable ? prevMeta : null;
  return withRunState(
    target,
    resumable ? { resume: resumable.id } : { create: { strategy, source: describe(source) } },
    async (state) => {
      if (!meta) {
        meta = { ...(await args.newMeta(state.runId, pre)), ...(filter ? { filter } : {}) };
        await state.setMeta(meta);
        if (filter) emit({ type: 'log', level: 'info', message: `filter: ${describeFilter(filter)}` });
        // The schema this run starts from: what status, verify and cutover compare the source with later.
        const shape = await withClient(source, 'source', (c) => readShape(c, filter));
        await withClient(target, 'target', (c) => recordShape(c, state.runId, shape));
      }
      const runMeta = meta;
      return withScratchDir(opts.workDir, `pgrelocate-schema-${state.runId}`, async (dir) => {
        const done = (resumable?.steps ?? []).filter((s) => s.status === 'done').map((s) => s.name);
        const ctx = args.context({
          ...run,
          state,
          meta: runMeta,
          resumed: resumable !== null,
          doneBefore: new Set(done),
          schemaFile: path.join(dir, 'schema.dump'),
        });
        const results = await runSteps(args.steps, ctx, emit, state);
        await state.setPhase('streaming');
        return { alreadyStreaming: false, ctx, results };
      });
    },
    (state) => state.setPhase(meta?.phase ?? 'copy', 'failed'),
  );
}
