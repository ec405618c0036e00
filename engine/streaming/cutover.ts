/**
 * The cutover skeleton every streaming strategy shares: lag gate, pre-hook,
 * write fence, the strategy's final sync, what replication does not carry,
 * verification, replication removed, post-hook. Each step runs through
 * `runSteps`, so the state records it. Any failure before the switch lifts
 * the fence and keeps replication running.
 */
import { withRunLock } from '../run-lock';
import { loadExeca, withoutSecrets } from '../tool-exec';
import { connect, describe, type ConnInfo } from '../conn';
import { applyDatabaseSettings } from '../database-settings';
import { isPgrelocateError, PgrelocateError } from '../errors';
import { analyzeMissing } from '../analyze';
import { runSteps, type Emit, type Step, type StepResult } from '../runner';
import { withRunState } from '../run';
import type { RunState } from '../state';
import { pinnedVerify, unloggedTables, type PinnedVerification } from './pinned';
import type { StreamingStrategy } from '../strategies/names';
import { opt } from '../option-names';
import {
  changedLargeObjects,
  changedTables,
  copyLargeObjects,
  copyUnlogged,
  precopy,
  refreshMatviews,
  syncSequences,
  type Precopy,
} from './cutover-steps';
import { armRollback, rollbackBlocker, startRollback } from './rollback';
import { describeChange, schemaChanges, type SchemaChange } from './schema-drift';
import { inspectServer } from '../inspect';
import { adminSession, checkPgbouncer, pointAtTarget, poolEntry, releasePool, resume, type PausedPool, type Pool } from './pgbouncer';
import {
  guarded,
  dropUnusedFence,
  endSessions,
  FENCE_SESSION,
  planFence,
  prepareFence,
  readFence,
  takeFence,
  type HeldFence,
  withinBound,
} from './fence';
import type { CutoverContext, StreamingHooks } from './hooks';
import { previousRun, resolveStreamingOptions, type StreamingMeta, type StreamingOptions } from './options';

export interface CutoverReport {
  readonly runId: string;
  readonly ok: boolean;
  /** Fence to target ready: the time the application could not write. */
  readonly blackoutSeconds: number;
  readonly steps: readonly { readonly name: string; readonly seconds: number }[];
  readonly sequences: number;
  /** Rows of unlogged and unreplicated key-less tables copied before the fence, while writes went on. */
  readonly precopiedRows: number;
  /** Large objects copied before the fence. */
  readonly precopiedLargeObjects: number;
  /** Inside the fence: rows of unlogged tables written since the pre-copy, copied again. */
  readonly unloggedRows: number;
  /** Inside the fence: rows of key-less tables copied again (pglogical's whole; the others' only if written since the pre-copy). */
  readonly keylessRows: number;
  /** Inside the fence: large objects created or written since the pre-copy (and those removed, removed). */
  readonly largeObjects: number;
  readonly matviews: number;
  readonly terminatedSessions: number;
  /** Sessions pgrelocate may not end (a managed service's own): kept, their writes refused by the fence's trigger. */
  readonly keptSessions: number;
  /** How long taking the table locks took (writers queue from the request on): part of the blackout. */
  readonly lockWaitSeconds: number;
  /** Tables the fence locked, and proved still locked by the same transaction at the switch. */
  readonly fencedTables: number;
  /** true when this cutover finished one that had stopped after its switch. */
  readonly resumed: boolean;
  /** Through PgBouncer: how long its PAUSE waited for transactions in flight (null without --pgbouncer-admin). */
  readonly pgbouncerPauseSeconds: number | null;
  /** At the pinned point before the fence, with how long writers were held for it. */
  readonly verification: PinnedVerification | null;
  /** The target's URL, without its password: where the application goes now. */
  readonly newTarget: string;
}

/** What the steps pass on to later ones; counts go into each step's detail, which the report reads. */
interface Ctx extends CutoverContext {
  readonly state: RunState;
  fencedAt: number;
  /** Unlogged tables carry no WAL, so no replication: copied before the fence, what changed since inside it. */
  unlogged: string[];
  /** What the pre-copy put on the target (null before it). */
  pre: Precopy | null;
  blackoutSeconds: number;
  verification: PinnedVerification | null;
  /** The fence while pgrelocate's session holds it (null before it, and once permanent). */
  held: HeldFence | null;
  /** When the guardrail rolls the cutover back: fencedAt + --max-blackout. */
  deadline: number;
  /** Through PgBouncer: the pool paused at the fence, until the switch resumes it. */
  pool: PausedPool | null;
}

/** The PgBouncer pool of this cutover, its name resolved (default: the source database's). */
function poolOf(c: CutoverContext): Pool | null {
  const p = c.opts.pgbouncer;
  return p ? { ...p, database: p.database ?? c.meta.sourceDatabase } : null;
}

export async function runHook(cmd: string, label: string): Promise<void> {
  // A hook is the user's command: it gets their environment, less the passwords pgrelocate was given.
  const { execa } = await loadExeca();
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

/**
 * The steps before the fence, while writes still flow: statistics, the lag
 * gate, the verification at a pinned point, the target's materialized views
 * refreshed from the replicated data, the pre-hook. None of them grows the
 * blackout.
 */
function stepsBefore(hooks: StreamingHooks, opts: StreamingOptions): Step<Ctx>[] {
  return [
    // First: a change the target lacks would stall the apply (the lag gate would then only say that it stalls).
    { name: 'schema-check', run: (c) => schemaCheck(c) },
    { name: 'analyze', run: (c, emit) => analyzeMissing(c.target, c.opts.jobs, emit) },
    ...(opts.pgbouncer ? [{ name: 'pgbouncer-check', run: (c: Ctx) => checkPgbouncer(poolOf(c)!, c.source) }] : []),
    ...(opts.rollback ? [{ name: 'rollback-check', run: (c: Ctx) => rollbackCheck(c) }] : []),
    { name: 'lag-gate', run: (c, emit) => hooks.lagGate(c, emit) },
    ...(opts.verify !== 'none' ? [verifyStep(opts.verify, hooks)] : []),
    // From the target's own tables, already current: what a refresh on the source would give.
    { name: 'matviews', run: async (c) => ({ matviews: await refreshMatviews(c.src, c.dst, c.meta.filter) }) },
    precopyStep(hooks),
    ...(opts.preHook ? [{ name: 'pre-hook', run: () => runHook(opts.preHook!, 'pre') }] : []),
  ];
}

/**
 * Before the fence, while writes go on: unlogged tables, key-less tables no
 * replication writes into, and every large object, copied whole. Inside the
 * fence only what changed since is copied again.
 */
function precopyStep(hooks: StreamingHooks): Step<Ctx> {
  return {
    name: 'pre-copy',
    async run(c) {
      c.unlogged = await unloggedTables(c.src, c.meta.filter);
      const tables = [...c.unlogged, ...(hooks.recopyUnreplicated ? hooks.recopy(c.meta) : [])];
      c.pre = await precopy(c.src, c.dst, tables);
      const objects = Object.values(c.pre.largeObjects);
      return {
        tables: tables.length,
        rows: Object.values(c.pre.rows).reduce((a, b) => a + b, 0),
        largeObjects: objects.length,
        bytes: objects.reduce((a, o) => a + o.size, 0),
      };
    },
  };
}

/** Inside the fence: of the pre-copied tables, those written since, copied again whole. */
async function copyChanged(c: Ctx, tables: readonly string[]): Promise<{ scanned: number; tables: number; rows: number }> {
  const changed = await changedTables(c.src, c.pre!, tables);
  return { scanned: tables.length, tables: changed.length, rows: await copyUnlogged(c.src, c.dst, changed) };
}

/** The steps inside the fence, up to the switch; then what follows it. */
function fencedSteps(hooks: StreamingHooks, opts: StreamingOptions, recopy: readonly string[]): Step<Ctx>[] {
  const inside: Step<Ctx>[] = [
    ...(hooks.fencedSteps ?? []),
    hooks.finalSync,
    {
      name: 'sequences',
      async run(c) {
        await c.dst.query('SET synchronous_commit = on');
        return { sequences: await syncSequences(c.src, c.dst, c.meta.filter) };
      },
    },
    { name: 'unlogged-tables', run: (c) => copyChanged(c, c.unlogged) },
    ...(recopy.length > 0
      ? [
          {
            name: 'key-less-tables',
            // Replication writes the inserts of pglogical's key-less tables: a copy before the fence would collide with them.
            run: async (c: Ctx) =>
              hooks.recopyUnreplicated
                ? copyChanged(c, recopy)
                : { scanned: 0, tables: recopy.length, rows: await copyUnlogged(c.src, c.dst, recopy) },
          },
        ]
      : []),
    {
      name: 'large-objects',
      async run(c) {
        const { copy, removed } = await changedLargeObjects(c.src, c.pre!);
        if (removed.length > 0)
          await c.dst.query(`SELECT lo_unlink(oid) FROM pg_largeobject_metadata WHERE oid = ANY($1::oid[])`, [removed]);
        const copied = copy.length > 0 ? await copyLargeObjects(c.src, c.dst, { only: copy }) : { count: 0, bytes: 0 };
        return { checked: Object.keys(c.pre!.largeObjects).length, count: copied.count, bytes: copied.bytes, removed: removed.length };
      },
    },
  ];
  return [fenceStep(), ...inside.map((s) => guarded(s, 'cutover')), switchStep(hooks), ...afterSwitch(hooks, opts, opts.rollback)];
}

/**
 * The fence: what it will change recorded first (in the run), the refusing
 * function made (it refuses nothing yet), then every migrated table locked by
 * pgrelocate's own session. Writers wait from here on.
 */
function fenceStep(): Step<Ctx> {
  return {
    name: 'fence',
    async run(c) {
      // Several databases as one: none fences before every one has passed its gates.
      await c.opts.together?.arrive('fence');
      const record = await planFence(c.src, c.meta.sourceDatabase, c.runId, describe(c.target), c.meta.filter);
      c.meta.fence = record;
      c.meta.phase = 'cutover';
      await c.state.setMeta(c.meta);
      await prepareFence(c.src, record.movedTo);
      c.fencedAt = Date.now();
      c.deadline = c.fencedAt + c.opts.maxBlackout * 1000;
      const taken = await takeFence(c.source, record.tables, c.opts.maxBlackout, poolOf(c));
      c.held = taken.held;
      c.pool = taken.pool;
      c.opts.together?.noteFence(c.fencedAt);
      return {
        tables: record.tables.length,
        lockWaitSeconds: taken.held.lockWaitSeconds,
        pgbouncerPauseSeconds: taken.pool?.seconds ?? null,
      };
    },
  };
}

/**
 * The switch: the locks proved held by the same transaction since before the
 * final LSN (so no write can have come after it), then the permanent fence
 * committed with them — all of it or none. From here the target is the
 * database; other sessions are ended so applications reconnect.
 */
function switchStep(hooks: StreamingHooks): Step<Ctx> {
  return {
    name: 'switch',
    async run(c) {
      const held = c.held!;
      if (Date.now() > c.deadline)
        throw new PgrelocateError(
          'max-blackout',
          `The cutover's write fence reached the ${c.opts.maxBlackout}s guardrail before the switch; it was lifted and the cutover rolled back: the source is writable and replication keeps running.`,
          `Run the cutover again, or raise ${opt('maxBlackout')}.`,
        );
      const locks = await held.proveHeld();
      if (c.opts.together) {
        // Several databases as one: none switches before every one holds its fence with its final LSN applied.
        await withinBound(
          c.opts.together.arrive('switch'),
          c.deadline - Date.now(),
          () =>
            new PgrelocateError(
              'max-blackout',
              `The cutover's write fence reached the ${c.opts.maxBlackout}s guardrail while this database waited for the others to be ready to switch; it was lifted and the cutover rolled back for every database.`,
              `Run the cutover again, or raise ${opt('maxBlackout')}.`,
            ),
        );
      }
      c.meta.fence!.at = new Date().toISOString();
      try {
        await held.makePermanent(c.meta.fence!);
      } catch (e) {
        // A connection lost during COMMIT leaves it unknown: the source's own record says whether it happened.
        const onSource = await readFence(c.src).catch(() => null);
        if (onSource?.runId !== c.runId) throw e;
      }
      c.held = null;
      c.meta.fence!.state = 'permanent';
      c.meta.phase = 'switched';
      await c.state.setMeta(c.meta);
      // The way back is armed before any application write reaches the new server.
      if (c.opts.rollback) {
        c.meta.rollback = await armRollback(c, c.meta.fence!.tables);
        await c.state.setMeta(c.meta);
      }
      // The pool's queued transactions go to the target as soon as it is the database.
      if (c.pool) await release(c, c.target);
      const switchedAt = Date.now();
      c.blackoutSeconds = (switchedAt - c.fencedAt) / 1000;
      // The one blackout of several databases ends with the last of these moments.
      c.opts.together?.noteSwitch(switchedAt);
      const own = (await c.src.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]!.p;
      // A filtered run moved part of the database: the sessions serve what stays, and the triggers refuse writes to what moved.
      const ended = c.meta.fence!.tablesOnly
        ? { terminated: 0, kept: 0 }
        : await endSessions(c.src, c.meta.sourceDatabase, hooks.fenceSpares, [own]);
      c.meta.fence!.terminated = ended.terminated;
      c.meta.fence!.kept = ended.kept;
      await c.state.setMeta(c.meta);
      return { locks, terminated: ended.terminated, kept: ended.kept, blackoutSeconds: c.blackoutSeconds };
    },
  };
}

/**
 * The source's schema changes since the sync started that the target lacks:
 * the cutover refuses, naming each, before anything is fenced.
 */
async function schemaCheck(c: Ctx): Promise<{ changes: number | null }> {
  const changes = await schemaChanges(c.src, c.dst, c.runId, c.meta.filter);
  if (changes && changes.length > 0) throw schemaChanged(changes, c.meta);
  return { changes: changes?.length ?? null };
}

/** The refusal for schema changes, with the way to apply them by hand. */
export function schemaChanged(changes: readonly SchemaChange[], meta: StreamingMeta): PgrelocateError {
  return new PgrelocateError(
    'schema-changed',
    `The source's schema changed since the sync started, and the target lacks ${changes.length === 1 ? 'the change' : `these ${changes.length} changes`}; nothing was fenced:\n  ${changes
      .slice(0, 20)
      .map(describeChange)
      .join('\n  ')}${changes.length > 20 ? `\n  … and ${changes.length - 20} more` : ''}`,
    `Make each change on the target too (the same DDL; for a new table, pg_dump --schema-only --table of it from the source), then bring a new table into replication — logical: ALTER PUBLICATION ${meta.names.publication} ADD TABLE … on the source, then ALTER SUBSCRIPTION ${meta.names.subscription} REFRESH PUBLICATION on the target, which copies its rows; pglogical: pglogical.replication_set_add_table(…, synchronize_data := true) — and run the cutover again.`,
    changes,
  );
}

/** --rollback: the old source must take a subscription and the new server publish; refused before anything is fenced. */
async function rollbackCheck(c: Ctx): Promise<void> {
  const why = rollbackBlocker(await inspectServer(c.src), await inspectServer(c.dst));
  if (why)
    throw new PgrelocateError(
      'no-rollback',
      `A way back cannot be armed: ${why}; nothing was fenced.`,
      'Cut over without --rollback (going back then means a new run from the new server to the old one), or connect to the source as a role that may create subscriptions.',
    );
}

/** The paused pool resumed (pointed at `at` first), once: the context forgets it. */
function release(c: Ctx, at: ConnInfo | null): Promise<void> {
  const p = c.pool!;
  c.pool = null;
  return releasePool(p, at);
}

/** After the switch, whatever stopped before: the pool's entry on the target, the pool resumed. */
async function ensurePoolOnTarget(c: Ctx): Promise<{ moved: boolean }> {
  const pool = poolOf(c)!;
  const s = await adminSession(pool.admin);
  try {
    const e = await poolEntry(s, pool.database);
    const there = e !== null && e.database === c.target.database && e.port === c.target.port;
    if (!there) await pointAtTarget(s, pool, c.target);
    await resume(s, pool.database);
    return { moved: !there };
  } finally {
    await s.end().catch(() => undefined);
  }
}

/**
 * After the switch: replication removed, then the way back started (when
 * armed), the database's own settings on the target. Re-run as they are by a
 * resumed cutover.
 */
function afterSwitch(hooks: StreamingHooks, opts: StreamingOptions, armed: boolean): Step<Ctx>[] {
  return [
    // A cutover taken up after its switch: the pool may still point at the old source (the watchdog resumed it there).
    ...(opts.pgbouncer ? [{ name: 'pgbouncer', run: (c: Ctx) => ensurePoolOnTarget(c) }] : []),
    { name: 'remove-replication', run: (c) => hooks.removeReplication(c) },
    ...(armed ? [{ name: 'rollback-start', run: (c: Ctx) => startRollback(c.src, c.meta.rollback!) }] : []),
    // The database's own settings, once nothing replicates into it any more and before the application comes.
    { name: 'database-settings', run: (c, emit) => applyDatabaseSettings(c.source, c.target, c.target.database, emit) },
  ];
}

function verifyStep(mode: 'count' | 'checksum', hooks: StreamingHooks): Step<Ctx> {
  return {
    name: 'verify',
    async run(c, emit) {
      const v = await pinnedVerify(c, hooks, mode, emit);
      c.verification = v;
      if (!v.ok) {
        throw new PgrelocateError(
          'verify-failed',
          `Verification at a pinned point failed; nothing was fenced and replication keeps running:\n  ${v.mismatches.slice(0, 10).join('\n  ')}`,
          'Investigate the differences (pgrelocate verify), fix the target, and run cutover again.',
          v,
        );
      }
      return { mode: v.mode, tables: v.tables.length, rows: v.rows, stallSeconds: v.stallSeconds };
    },
  };
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
  if (meta.phase === 'rolled-back')
    throw new PgrelocateError(
      'already-cut-over',
      `Run ${run.id} was cut over and rolled back; its replication is gone.`,
      'Run pgrelocate cleanup, then a new sync to move again.',
    );
  if (meta.phase === 'copy')
    throw new PgrelocateError(
      'not-streaming',
      `Run ${run.id} is not streaming yet (phase ${meta.phase}).`,
      'Run pgrelocate sync until it reports streaming.',
    );
  return { id: run.id, strategy: run.strategy as StreamingStrategy, meta };
}

/**
 * A cutover that stopped part-way (pgrelocate killed, its host gone): before
 * the switch its fence ended with its session, so the run is streaming again
 * (a fence session still alive, from a host cut off, is ended first); after
 * the switch — the source's own record says — only what follows the switch
 * is left to do. Returns whether the switch was made.
 */
async function recover(c: Ctx, emit: Emit): Promise<boolean> {
  const meta = c.meta;
  if (meta.phase === 'streaming') return false;
  const onSource = await readFence(c.src);
  if (onSource && onSource.runId === c.runId) {
    meta.fence = { ...onSource, ...(meta.fence?.terminated !== undefined ? { terminated: meta.fence.terminated } : {}) };
    if (meta.phase !== 'switched') {
      meta.phase = 'switched';
      await c.state.setMeta(meta);
    }
    emit({ type: 'log', level: 'info', message: `the previous cutover of run ${c.runId} stopped after its switch: finishing it` });
    return true;
  }
  const stale = await c.src.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database() AND pid <> pg_backend_pid()`,
    [FENCE_SESSION],
  );
  for (const { pid } of stale.rows) await c.src.query('SELECT pg_terminate_backend($1)', [pid]);
  await dropUnusedFence(c.src);
  meta.fence = null;
  meta.phase = 'streaming';
  await c.state.setMeta(meta);
  emit({
    type: 'log',
    level: 'info',
    message: `the previous cutover of run ${c.runId} stopped before its switch; its fence ended with its session${stale.rowCount ? ` (${stale.rowCount} left over, ended now)` : ''}: starting again`,
  });
  return false;
}

/**
 * The cutover of the run recorded on the target, with the hooks of its
 * strategy. Any failure before the switch lifts the fence and keeps
 * replication running: nothing lost, nothing half-done. One that stopped
 * part-way is taken up again: from the start before its switch, from the
 * switch on after it.
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
      // pgrelocate's own source session stays writable through the fence (a resumed cutover meets it permanent).
      await src.query('SET default_transaction_read_only = off');
      return await withRunState(
        target,
        { resume: run.id },
        async (state) => {
          const ctx: Ctx = {
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
            pre: null,
            blackoutSeconds: 0,
            verification: null,
            held: null,
            deadline: 0,
            pool: null,
          };
          const switched = await recover(ctx, emit).catch((e: Error) => {
            opts.together?.fail(e);
            throw e;
          });
          // Switched by an earlier cutover: it only finishes what follows, and the others do not wait for it.
          if (switched) opts.together?.leave();
          return cutoverSteps(ctx, hooks, emit, switched);
        },
        (state) => state.setPhase(run.meta.phase === 'switched' ? 'switched' : 'streaming'),
      );
    } finally {
      await Promise.all([src, dst].map((c) => c.end().catch(() => undefined)));
    }
  });
}

/** The steps up to the switch, lifting the fence if one fails; then the post-hook, and the report. */
async function cutoverSteps(ctx: Ctx, hooks: StreamingHooks, emit: Emit, switched: boolean): Promise<CutoverReport> {
  const { opts, state } = ctx;
  const results: StepResult[] = [];
  try {
    if (switched) results.push(...(await runSteps(afterSwitch(hooks, opts, !!ctx.meta.rollback), ctx, emit, state)));
    else {
      results.push(...(await runSteps(stepsBefore(hooks, opts), ctx, emit, state)));
      results.push(...(await runSteps(fencedSteps(hooks, opts, hooks.recopy(ctx.meta)), ctx, emit, state)));
    }
    ctx.meta.phase = 'done';
    await state.setMeta(ctx.meta);
  } catch (e) {
    ctx.opts.together?.fail(e as Error);
    if (ctx.meta.phase === 'cutover') {
      // Before the switch nothing of the fence is permanent: rolling its transaction back lifts it.
      await ctx.held?.release();
      if (ctx.pool)
        await release(ctx, null).catch((err: Error) =>
          emit({
            type: 'log',
            level: 'warn',
            message: `could not resume PgBouncer: ${err.message}; its watchdog resumes it within seconds`,
          }),
        );
      await dropUnusedFence(ctx.src).catch((err: Error) =>
        emit({
          type: 'log',
          level: 'warn',
          message: `could not remove the unused fence function: ${err.message}; pgrelocate cleanup does`,
        }),
      );
      ctx.meta.fence = null;
      ctx.meta.phase = 'streaming';
      await state.setMeta(ctx.meta).catch(() => undefined);
      throw e;
    }
    if (ctx.pool) await release(ctx, null).catch(() => undefined);
    if (ctx.meta.phase === 'switched')
      throw new PgrelocateError(
        'cutover-incomplete',
        `The switch was made (the target holds every change, the source is fenced) but the cutover stopped after it: ${(e as Error).message}`,
        `Run pgrelocate cutover again: it finishes from the switch on.${isPgrelocateError(e) && e.fix ? ` (${e.fix})` : ''}`,
      );
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
    precopiedRows: count('pre-copy', 'rows'),
    precopiedLargeObjects: count('pre-copy', 'largeObjects'),
    unloggedRows: count('unlogged-tables', 'rows'),
    keylessRows: count('key-less-tables', 'rows'),
    largeObjects: count('large-objects', 'count'),
    matviews: count('matviews', 'matviews'),
    terminatedSessions: count('switch', 'terminated'),
    keptSessions: count('switch', 'kept'),
    lockWaitSeconds: count('fence', 'lockWaitSeconds'),
    fencedTables: count('switch', 'locks'),
    resumed: switched,
    pgbouncerPauseSeconds: ctx.opts.pgbouncer ? count('fence', 'pgbouncerPauseSeconds') : null,
    verification: ctx.verification,
    newTarget: describe(ctx.target),
  };
  await state.setPhase('done');
  await state.finish('done', report);
  return report;
}

/**
 * `verify` of a streaming run: at a pinned point, while writes and
 * replication go on. Null when no streaming run is recorded on the target
 * (the caller compares the databases as they are).
 */
export async function runPinnedVerify(
  source: ConnInfo,
  target: ConnInfo,
  options: Partial<StreamingOptions> & { readonly mode: 'count' | 'checksum' },
  emit: Emit,
  hooksFor: (s: StreamingStrategy) => StreamingHooks,
): Promise<PinnedVerification | null> {
  const run = await previousRun(target);
  const meta = (run?.meta ?? null) as StreamingMeta | null;
  if (!run || meta?.phase !== 'streaming') return null;
  const opts = resolveStreamingOptions(options);
  const hooks = hooksFor(run.strategy as StreamingStrategy);
  const src = await connect(source, 'source');
  try {
    const dst = await connect(target, 'target');
    try {
      // A table the target lacks cannot be compared, and a column it lacks stalls the apply the pin waits for: named first.
      const changes = await schemaChanges(src, dst, run.id, meta.filter);
      if (changes && changes.length > 0) throw schemaChanged(changes, meta);
      return await pinnedVerify({ source, target, opts, meta, runId: run.id, src, dst }, hooks, options.mode, emit);
    } finally {
      await dst.end().catch(() => undefined);
    }
  } finally {
    await src.end().catch(() => undefined);
  }
}

/** What a cutover with these hooks does, step by step, for `plan`: the blackout is from fence to switch. Pure. */
export function describeCutover(hooks: StreamingHooks): string {
  return [...stepsBefore(hooks, resolveStreamingOptions({})), ...fencedSteps(hooks, resolveStreamingOptions({}), ['key-less'])]
    .map((s) => s.name)
    .join(', ');
}
