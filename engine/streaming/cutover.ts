/**
 * The cutover skeleton every streaming strategy shares: lag gate, pre-hook,
 * write fence, the strategy's final sync, what replication does not carry,
 * verification, replication removed, post-hook. Each step runs through
 * `runSteps`, so the state records it. Any failure before the switch lifts
 * the fence and keeps replication running.
 */
import { execa } from 'execa';
import { withRunLock } from '../run-lock';
import { withoutSecrets } from '../tool-exec';
import { connect, describe, type ConnInfo } from '../conn';
import { applyDatabaseSettings } from '../database-settings';
import { PgrelocateError } from '../errors';
import { analyzeMissing } from '../analyze';
import { SYSTEM_SCHEMA_FILTER } from '../inspect';
import { runSteps, type Emit, type Step, type StepResult } from '../runner';
import { withRunState } from '../run';
import type { RunState } from '../state';
import { verify, type VerifyResult } from '../verify';
import type { StreamingStrategy } from '../strategies/names';
import { copyLargeObjects, copyUnlogged, refreshMatviews, syncSequences } from './cutover-steps';
import { fenceWrites, unfence } from './fence';
import type { CutoverContext, StreamingHooks } from './hooks';
import { previousRun, resolveStreamingOptions, type StreamingMeta, type StreamingOptions } from './options';

export interface CutoverReport {
  readonly runId: string;
  readonly ok: boolean;
  /** Fence to target ready: the time the application could not write. */
  readonly blackoutSeconds: number;
  readonly steps: readonly { readonly name: string; readonly seconds: number }[];
  readonly sequences: number;
  readonly unloggedRows: number;
  /** pglogical and bucardo: rows of key-less tables copied again inside the fence. */
  readonly keylessRows: number;
  readonly largeObjects: number;
  readonly matviews: number;
  readonly terminatedSessions: number;
  readonly verification: VerifyResult | null;
  /** The target's URL, without its password: where the application goes now. */
  readonly newTarget: string;
}

/** What the steps pass on to later ones; counts go into each step's detail, which the report reads. */
interface Ctx extends CutoverContext {
  readonly state: RunState;
  fencedAt: number;
  /** Unlogged tables carry no WAL, so no replication: copied inside the fence. */
  unlogged: string[];
  blackoutSeconds: number;
  verification: VerifyResult | null;
}

async function runHook(cmd: string, label: string): Promise<void> {
  // A hook is the user's command: it gets their environment, less the passwords pgrelocate was given.
  const r = await execa(cmd, {
    shell: true,
    reject: false,
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 600_000,
    extendEnv: false,
    env: withoutSecrets(),
  });
  if (r.exitCode !== 0) {
    throw new PgrelocateError(
      'hook-failed',
      `The ${label} hook failed (exit ${r.exitCode}): ${String(r.stderr).split('\n').slice(-5).join(' ')}`,
      `Fix the ${label} hook command and retry.`,
    );
  }
}

/** The steps before the fence: statistics while writes still flow, the lag gate, the pre-hook. */
function stepsBefore(hooks: StreamingHooks, opts: StreamingOptions): Step<Ctx>[] {
  return [
    { name: 'analyze', run: (c, emit) => analyzeMissing(c.target, c.opts.jobs, emit) },
    { name: 'lag-gate', run: (c, emit) => hooks.lagGate(c, emit) },
    ...(opts.preHook ? [{ name: 'pre-hook', run: () => runHook(opts.preHook!, 'pre') }] : []),
  ];
}

/** The steps inside the fence, up to the switch. */
function fencedSteps(hooks: StreamingHooks, opts: StreamingOptions, recopy: readonly string[]): Step<Ctx>[] {
  return [
    {
      name: 'fence',
      async run(c) {
        c.unlogged = await unloggedTables(c);
        c.fencedAt = Date.now();
        const fence = await fenceWrites(c.src, c.meta.sourceDatabase, hooks.fenceSpares);
        c.meta.fence = fence;
        c.meta.phase = 'cutover';
        await c.state.setMeta(c.meta);
        return { terminated: fence.terminated };
      },
    },
    ...(hooks.fencedSteps ?? []),
    hooks.finalSync,
    {
      name: 'sequences',
      async run(c) {
        await c.dst.query('SET synchronous_commit = on');
        return { sequences: await syncSequences(c.src, c.dst) };
      },
    },
    {
      name: 'unlogged-tables',
      async run(c) {
        return { tables: c.unlogged.length, rows: await copyUnlogged(c.src, c.dst, c.unlogged) };
      },
    },
    ...(recopy.length > 0
      ? [
          {
            name: 'key-less-tables',
            run: async (c: Ctx) => ({ tables: recopy.length, rows: await copyUnlogged(c.src, c.dst, recopy) }),
          },
        ]
      : []),
    {
      name: 'large-objects',
      run: (c) => copyLargeObjects(c.src, c.dst),
    },
    {
      name: 'matviews',
      run: async (c) => ({ matviews: await refreshMatviews(c.src, c.dst) }),
    },
    ...(opts.verify !== 'none' ? [verifyStep(opts.verify)] : []),
    {
      name: 'remove-replication',
      async run(c) {
        c.blackoutSeconds = (Date.now() - c.fencedAt) / 1000;
        await hooks.removeReplication(c);
      },
    },
    // The database's own settings, once nothing replicates into it any more and before the application comes.
    { name: 'database-settings', run: (c, emit) => applyDatabaseSettings(c.source, c.target, c.target.database, emit) },
  ];
}

function verifyStep(mode: 'count' | 'checksum'): Step<Ctx> {
  return {
    name: 'verify',
    async run(c) {
      const v = await verify(c.source, c.target, { mode, jobs: c.opts.jobs, matviews: false });
      c.verification = v;
      if (!v.ok) {
        throw new PgrelocateError(
          'verify-failed',
          `Verification failed at cutover; the source was unfenced and replication keeps running:\n  ${v.mismatches.slice(0, 10).join('\n  ')}`,
          'Investigate the differences (pgrelocate verify), fix the target, and run cutover again.',
          v,
        );
      }
      return { mode: v.mode, tables: v.tables.length, rows: v.rows };
    },
  };
}

async function unloggedTables(c: Ctx): Promise<string[]> {
  const r = await c.src.query<{ q: string }>(
    `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS q FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND c.relpersistence = 'u' AND ${SYSTEM_SCHEMA_FILTER}`,
  );
  return r.rows.map((x) => x.q);
}

/** The run on the target a cutover continues, refused with the reason when there is none to cut over. */
async function streamingRun(target: ConnInfo): Promise<{ id: string; strategy: StreamingStrategy; meta: StreamingMeta }> {
  const run = await previousRun(target);
  const meta = (run?.meta ?? null) as StreamingMeta | null;
  if (!run || !meta)
    throw new PgrelocateError('no-run', 'No logical, pglogical or bucardo run is recorded on this target.', 'Run pgrelocate sync first.');
  if (meta.phase === 'done')
    throw new PgrelocateError(
      'already-cut-over',
      `Run ${run.id} was already cut over.`,
      'Nothing to do; run pgrelocate cleanup to remove the state.',
    );
  if (meta.phase !== 'streaming')
    throw new PgrelocateError(
      'not-streaming',
      `Run ${run.id} is not streaming yet (phase ${meta.phase}).`,
      'Run pgrelocate sync until it reports streaming.',
    );
  return { id: run.id, strategy: run.strategy as StreamingStrategy, meta };
}

/**
 * The cutover of the run recorded on the target, with the hooks of its
 * strategy. Any failure before the switch lifts the fence and keeps
 * replication running: nothing lost, nothing half-done.
 */
export async function runCutover(
  source: ConnInfo,
  target: ConnInfo,
  options: Partial<StreamingOptions>,
  emit: Emit,
  hooksFor: (s: StreamingStrategy) => StreamingHooks,
): Promise<CutoverReport> {
  return withRunLock(target, 'cutover', async () => {
    const opts = resolveStreamingOptions(options);
    const run = await streamingRun(target);
    const hooks = hooksFor(run.strategy);
    const src = await connect(source, 'source');
    const dst = await connect(target, 'target').catch(async (e: unknown) => {
      await src.end().catch(() => undefined);
      throw e;
    });
    try {
      return await withRunState(
        target,
        { resume: run.id },
        (state) =>
          cutoverSteps(
            {
              source,
              target,
              opts,
              meta: run.meta,
              runId: run.id,
              src,
              dst,
              state,
              fencedAt: 0,
              unlogged: [],
              blackoutSeconds: 0,
              verification: null,
            },
            hooks,
            emit,
          ),
        (state) => state.setPhase('streaming'),
      );
    } finally {
      await Promise.all([src, dst].map((c) => c.end().catch(() => undefined)));
    }
  });
}

/** The steps up to the switch, lifting the fence if one fails; then the post-hook, and the report. */
async function cutoverSteps(ctx: Ctx, hooks: StreamingHooks, emit: Emit): Promise<CutoverReport> {
  const { opts, state } = ctx;
  const results: StepResult[] = [];
  try {
    results.push(...(await runSteps(stepsBefore(hooks, opts), ctx, emit, state)));
    results.push(...(await runSteps(fencedSteps(hooks, opts, hooks.recopy(ctx.meta)), ctx, emit, state)));
    ctx.meta.phase = 'done';
    await state.setMeta(ctx.meta);
  } catch (e) {
    // A cutover starts only from a streaming run, which has no fence: one here is this cutover's.
    if (ctx.meta.fence) {
      await unfence(ctx.src, ctx.meta.fence).catch((err: Error) =>
        emit({ type: 'log', level: 'warn', message: `could not lift the fence: ${err.message}; run pgrelocate cleanup --unfence` }),
      );
      ctx.meta.fence = null;
      ctx.meta.phase = 'streaming';
      await state.setMeta(ctx.meta).catch(() => undefined);
    }
    throw e;
  }
  // After the switch a failing post-hook is the user's to fix: the cutover stands.
  if (opts.postHook)
    results.push(
      ...(await runSteps([{ name: 'post-hook', run: () => runHook(opts.postHook!, 'post') }], ctx, emit, state).catch((e: Error) => {
        emit({ type: 'log', level: 'warn', message: e.message });
        return [];
      })),
    );
  // A count the report gives, from the detail of the step that made it (0 when the step did not run).
  const count = (step: string, key: string): number =>
    Number((results.find((r) => r.name === step)?.detail as Record<string, unknown> | undefined)?.[key] ?? 0);
  const report: CutoverReport = {
    runId: ctx.runId,
    ok: true,
    blackoutSeconds: ctx.blackoutSeconds,
    steps: results.map((r) => ({ name: r.name, seconds: r.seconds })),
    sequences: count('sequences', 'sequences'),
    unloggedRows: count('unlogged-tables', 'rows'),
    keylessRows: count('key-less-tables', 'rows'),
    largeObjects: count('large-objects', 'count'),
    matviews: count('matviews', 'matviews'),
    terminatedSessions: count('fence', 'terminated'),
    verification: ctx.verification,
    newTarget: describe(ctx.target),
  };
  await state.setPhase('done');
  await state.finish('done', report);
  return report;
}

/** What a cutover with these hooks does inside the fence, step by step, for `plan`. Pure. */
export function describeCutover(hooks: StreamingHooks): string {
  return fencedSteps(hooks, resolveStreamingOptions({}), ['key-less'])
    .map((s) => s.name)
    .join(', ');
}
