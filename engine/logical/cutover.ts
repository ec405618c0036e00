/**
 * The cutover protocol: lag gate, pre-hook, write fence, final LSN, what
 * replication does not carry, verification, replication removed, post-hook.
 * Any failure before the switch lifts the fence and keeps replication running.
 */
import { opt } from '../option-names';
import { withRunLock } from '../run-lock';
import { execa } from 'execa';
import { withoutSecrets } from '../tool-exec';
import { connect, describe, type ConnInfo } from '../conn';
import { applyDatabaseSettings } from '../database-settings';
import { PgrelocateError } from '../errors';
import { analyzeMissing } from '../analyze';
import { SYSTEM_SCHEMA_FILTER } from '../inspect';
import { type Emit } from '../runner';
import { RunState } from '../state';
import { verify, type VerifyResult } from '../verify';
import { copyLargeObjects, copyUnlogged, refreshMatviews, syncSequences } from './cutover-steps';
import { fenceWrites, unfence, type FenceState } from './fence';
import { waitForLsn } from './subscription';
import { dropSlot, dropSubscription } from './artefacts';
import { previousRun, resolveLogicalOptions, type LogicalMeta, type LogicalOptions } from './run-options';
import { waitForLag } from './sync';
import { removeProviderSide, removeSubscriberSide } from '../pglogical/teardown';
import { removeBucardo } from '../bucardo/teardown';
import { controlFor } from '../bucardo/sync';

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

/**
 * The cutover protocol. Any failure before the switch lifts the fence and
 * keeps replication running: nothing lost, nothing half-done.
 */
export async function cutover(
  source: ConnInfo,
  target: ConnInfo,
  options: Partial<LogicalOptions>,
  emit: Emit = () => undefined,
): Promise<CutoverReport> {
  return withRunLock(target, 'cutover', () => cutoverLocked(source, target, options, emit));
}

async function cutoverLocked(
  source: ConnInfo,
  target: ConnInfo,
  options: Partial<LogicalOptions>,
  emit: Emit = () => undefined,
): Promise<CutoverReport> {
  const opts = resolveLogicalOptions(options);
  const run = await previousRun(target);
  const meta = (run?.meta ?? null) as LogicalMeta | null;
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
  const timings: { name: string; seconds: number }[] = [];
  const timed = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    emit({ type: 'step', name, status: 'start' });
    const t = Date.now();
    try {
      const v = await fn();
      timings.push({ name, seconds: (Date.now() - t) / 1000 });
      emit({ type: 'step', name, status: 'done', seconds: (Date.now() - t) / 1000 });
      return v;
    } catch (e) {
      emit({ type: 'step', name, status: 'failed', seconds: (Date.now() - t) / 1000 });
      throw e;
    }
  };
  // Statistics for tables that have none yet, while writes still flow (outside the blackout).
  await timed('analyze', () => analyzeMissing(target, opts.jobs, emit));
  const buc = meta.bucardo;
  const bucardo = buc ? controlFor(buc) : null;
  if (bucardo && buc) {
    // Bucardo has no byte lag: the gate is one sync run that finishes in time.
    const kicked = await timed('lag-gate', () => bucardo.kick(buc.sync, opts.catchUpTimeout * 1000));
    if (kicked !== 'done')
      throw new PgrelocateError(
        'lag-too-high',
        `Bucardo's sync ${buc.sync} did not finish a run within ${opts.catchUpTimeout}s (${kicked}); nothing was fenced.`,
        `Wait until it keeps up (bucardo status), or raise ${opt('catchUpTimeout')}.`,
      );
  }
  const lag = bucardo ? null : await timed('lag-gate', () => waitForLag(source, meta.names, opts.maxLagBytes, opts.catchUpTimeout, emit));
  if (lag && lag.bytes > opts.maxLagBytes) {
    throw new PgrelocateError(
      'lag-too-high',
      `The target is ${lag.bytes} bytes behind (threshold ${opts.maxLagBytes}); nothing was fenced.`,
      `Wait for catch-up (pgrelocate status) or raise ${opt('maxLag')}.`,
    );
  }
  if (opts.preHook) await timed('pre-hook', () => runHook(opts.preHook!, 'pre'));
  const src = await connect(source, 'source');
  const dst = await connect(target, 'target');
  const stateClient = await connect(target, 'target');
  const state = await RunState.resume(stateClient, run.id);
  let fence: FenceState | null = null;
  let fencedAt = 0;
  try {
    const unlogged = (
      await src.query<{ q: string }>(
        `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS q FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind = 'r' AND c.relpersistence = 'u' AND ${SYSTEM_SCHEMA_FILTER}`,
      )
    ).rows.map((r) => r.q);
    fencedAt = Date.now();
    fence = await timed('fence', () => fenceWrites(src, meta.sourceDatabase, bucardo ? 'bucardo %' : undefined));
    meta.fence = fence;
    meta.phase = 'cutover';
    await state.setMeta(meta);
    const pgl = meta.pglogical;
    if (pgl) {
      // pglogical carries sequence values only when asked; the exact values are set again below.
      await timed('pglogical-sequences', async () => {
        const seqs = await src.query<{ s: string }>(`SELECT set_seqoid::regclass::text AS s FROM pglogical.replication_set_seq`);
        for (const { s } of seqs.rows) await src.query(`SELECT pglogical.synchronize_sequence($1::regclass)`, [s]);
        return seqs.rows.length;
      });
    }
    await timed(bucardo ? 'final-sync' : 'final-lsn', async () => {
      if (bucardo && buc) {
        // Writes are fenced: a sync run that starts after this carries everything committed before the fence.
        // Two completions: the first may belong to a run that began before the fence.
        const r = await bucardo.kick(buc.sync, opts.applyTimeout * 1000, 2);
        if (r !== 'done')
          throw new PgrelocateError(
            'apply-timeout',
            `Bucardo's sync ${buc.sync} did not finish within ${opts.applyTimeout}s once writes were fenced (${r}).`,
            `Check Bucardo (bucardo status ${buc.sync}, its log in ${buc.dir}) and retry the cutover.`,
          );
        return;
      }
      const lsn = (await src.query<{ l: string }>(`SELECT pg_current_wal_lsn()::text AS l`)).rows[0]!.l;
      if (!(await waitForLsn(src, meta.names, lsn, opts.applyTimeout * 1000))) {
        throw new PgrelocateError(
          'apply-timeout',
          `The target did not apply the source's final LSN ${lsn} within ${opts.applyTimeout}s.`,
          'Check the subscription on the target (pg_stat_subscription, server log) and retry the cutover.',
        );
      }
    });
    await dst.query('SET synchronous_commit = on');
    const sequences = await timed('sequences', () => syncSequences(src, dst));
    const unloggedRows = await timed('unlogged-tables', () => copyUnlogged(src, dst, unlogged));
    // pglogical's default_insert_only tables missed their updates and deletes, Bucardo cannot track
    // key-less tables at all, and logical leaves out those REPLICA IDENTITY FULL cannot match: copy them again, whole.
    const recopy = pgl?.insertOnly ?? buc?.fullCopy ?? meta.fullCopy ?? [];
    const keylessRows = recopy.length > 0 ? await timed('key-less-tables', () => copyUnlogged(src, dst, recopy)) : 0;
    const los = await timed('large-objects', () => copyLargeObjects(src, dst));
    const matviews = await timed('matviews', () => refreshMatviews(src, dst));
    let verification: VerifyResult | null = null;
    if (opts.verify !== 'none') {
      verification = await timed('verify', () =>
        verify(source, target, { mode: opts.verify === 'none' ? 'count' : opts.verify, jobs: opts.jobs, matviews: false }),
      );
      if (!verification.ok) {
        throw new PgrelocateError(
          'verify-failed',
          `Verification failed at cutover; the source was unfenced and replication keeps running:\n  ${verification.mismatches.slice(0, 10).join('\n  ')}`,
          'Investigate the differences (pgrelocate verify), fix the target, and run cutover again.',
          verification,
        );
      }
    }
    const blackoutSeconds = (Date.now() - fencedAt) / 1000;
    await timed('remove-replication', async () => {
      if (pgl) {
        await removeSubscriberSide(dst, pgl);
        await removeProviderSide(src, meta.names.slot, pgl);
        return;
      }
      if (bucardo && buc) {
        await removeBucardo(bucardo, buc, src, dst);
        return;
      }
      await dropSubscription(dst, meta.names.subscription);
      await dropSlot(src, meta.names.slot);
      await src.query(`DROP PUBLICATION IF EXISTS ${meta.names.publication}`);
    });
    // The database's own settings, once nothing replicates into it any more and before the application comes.
    await timed('database-settings', () => applyDatabaseSettings(source, target, target.database, emit));
    meta.phase = 'done';
    await state.setMeta(meta);
    if (opts.postHook)
      await timed('post-hook', () => runHook(opts.postHook!, 'post')).catch((e: Error) =>
        emit({ type: 'log', level: 'warn', message: e.message }),
      );
    const report: CutoverReport = {
      runId: run.id,
      ok: true,
      blackoutSeconds,
      steps: timings,
      sequences,
      unloggedRows,
      keylessRows,
      largeObjects: los.count,
      matviews,
      terminatedSessions: fence.terminated,
      verification,
      newTarget: describe(target),
    };
    await state.finish('done', report);
    return report;
  } catch (e) {
    if (fence) {
      await unfence(src, fence).catch((err: Error) =>
        emit({ type: 'log', level: 'warn', message: `could not lift the fence: ${err.message}; run pgrelocate cleanup --unfence` }),
      );
      meta.fence = null;
      meta.phase = 'streaming';
      await state.setMeta(meta).catch(() => undefined);
      await state.setPhase('streaming').catch(() => undefined);
    }
    throw e;
  } finally {
    await Promise.all([src, dst, stateClient].map((c) => c.end().catch(() => undefined)));
  }
}
