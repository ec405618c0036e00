/**
 * A way back after the switch. With `--rollback`, the cutover's switch arms
 * reverse replication before the application reaches the new server: a
 * publication and a slot on the target, a subscription on the old source
 * (whose apply runs with `session_replication_role = replica`, so the fence's
 * triggers let it through while they refuse the applications). It is native
 * logical replication whatever the forward strategy (logical, pglogical,
 * Bucardo), and its subscription starts only once the forward replication is
 * gone: until then the slot keeps every change, and no change can go round
 * both ways. `pgrelocate
 * rollback` is then a cutover in reverse: the new server fenced (writers
 * wait), its last LSN applied on the old one, sequences and what replication
 * does not carry copied back, the new server's fence made permanent and the
 * old one's lifted, PgBouncer pointed back, the reverse replication removed.
 * Nothing written on the new server since the switch is lost.
 */
import type pg from 'pg';
import { connect, describe, ident, type ConnInfo } from '../conn';
import type { ServerInfo } from '../inspect';
import { PgrelocateError } from '../errors';
import { opt } from '../option-names';
import { withRunLock } from '../run-lock';
import { withRunState } from '../run';
import { runSteps, type Emit, type Step } from '../runner';
import { tableKey } from '../verify';
import { dropSlot, dropSubscription } from './artefacts';
import { copyLargeObjects, copyUnlogged, syncSequences } from './cutover-steps';
import { FENCE_TRIGGERS, guarded, planFence, prepareFence, takeFence, unfence, type FenceRecord, type HeldFence } from './fence';
import type { CutoverContext } from './hooks';
import { previousRun, resolveStreamingOptions, type StreamingMeta, type StreamingOptions } from './options';
import { releasePool, type PausedPool } from './pgbouncer';
import type { LogicalNames } from './snapshot';
import { applyHealthGate, createSubscription, waitForLag, waitForLsn } from './subscription';

export interface RollbackMeta {
  /** Publication and slot on the new server, subscription on the old one. */
  readonly names: LogicalNames;
  /** Tables reverse replication does not carry (unlogged, or no replica identity on the new server): copied back whole. */
  readonly recopy: readonly string[];
  readonly armedAt: string;
}

/** The reverse artefacts' names, from the run's tag (its publication's name, pgrelocate's whatever the strategy). Pure. */
export function backNames(names: LogicalNames): LogicalNames {
  const tag = `${names.publication}_back`;
  return { slot: tag, publication: tag, subscription: tag };
}

/**
 * Why a way back (cutover --rollback) cannot be armed, or null: the reverse
 * replication is native logical replication, whatever the forward strategy —
 * a publication and a slot on the new server, a subscription on the old one.
 * Pure.
 */
export function rollbackBlocker(source: ServerInfo, target: ServerInfo): string | null {
  if (source.versionNum < 100000)
    return `the source runs PostgreSQL ${source.major}, which cannot subscribe to the new server (native logical replication starts at 10)`;
  // A managed service's admin role may create subscriptions where the service allows logical replication (RDS).
  if (!source.canCreateSubscription && !source.managedAdminOf.includes('rds_superuser'))
    return `user "${source.currentUser}" may not create a subscription on the source (it needs a superuser, pg_create_subscription on 16+, or rds_superuser), so the source cannot take the new server's changes back`;
  if (target.settings['wal_level'] !== 'logical')
    return `the new server's wal_level is ${target.settings['wal_level'] ?? 'unknown'}, so it cannot publish its changes back (set wal_level = logical; on RDS rds.logical_replication = 1)`;
  if (!target.canReplicate)
    return `user "${target.currentUser}" may not create a replication slot on the new server (it needs REPLICATION, or rds_replication)`;
  return null;
}

/** At the switch, before the application reaches the new server: reverse replication, idle until a rollback needs it. */
export async function armRollback(c: CutoverContext, tables: readonly string[]): Promise<RollbackMeta> {
  const names = backNames(c.meta.names);
  // On the new server a table without a usable replica identity would refuse the application's UPDATEs once
  // published: those are not published but copied back whole, like unlogged tables.
  const unpublishable = new Set(
    (
      await c.dst.query<{ q: string }>(
        `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS q FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind = 'r' AND (c.relpersistence = 'u' OR NOT (c.relreplident = 'f'
            OR (c.relreplident = 'd' AND EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = c.oid AND x.indisprimary))
            OR (c.relreplident = 'i' AND EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = c.oid AND x.indisreplident))))`,
      )
    ).rows.map((r) => tableKey(r.q)),
  );
  const published = tables.filter((t) => !unpublishable.has(tableKey(t)));
  const recopy = tables.filter((t) => unpublishable.has(tableKey(t)));
  await c.dst.query(
    published.length > 0
      ? `CREATE PUBLICATION ${ident(names.publication)} FOR TABLE ${published.join(', ')}`
      : `CREATE PUBLICATION ${ident(names.publication)}`,
  );
  await c.dst.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [names.slot]);
  try {
    // Disabled: while the forward replication lives, a change applied on the old source would be sent back again.
    await createSubscription(c.src, names, c.target, false);
  } catch (e) {
    throw new PgrelocateError(
      'subscribe-failed',
      `The old source could not subscribe to the new server for a way back: ${(e as Error).message.replace(/^The target could not subscribe to the source at [^:]*: /, '')}`,
      'Let the new server admit the old one (security group, pg_hba.conf); then run pgrelocate cutover again, which finishes the switch (without a way back unless this is fixed).',
    );
  }
  return { names, recopy, armedAt: new Date().toISOString() };
}

/** Once the forward replication is removed: the reverse subscription starts, from the slot made at the switch. Idempotent. */
export async function startRollback(src: pg.Client, r: RollbackMeta): Promise<void> {
  await src.query(`ALTER SUBSCRIPTION ${ident(r.names.subscription)} ENABLE`);
}

/** Remove the reverse replication: the subscription on the old source, publication and slot on the new server. */
export async function disarmRollback(src: pg.Client, dst: pg.Client, r: RollbackMeta): Promise<string[]> {
  const removed: string[] = [];
  if (await dropSubscription(src, r.names.subscription)) removed.push(`subscription ${r.names.subscription} (source)`);
  await dropSlot(dst, r.names.slot);
  await dst.query(`DROP PUBLICATION IF EXISTS ${ident(r.names.publication)}`);
  return removed;
}

export interface RollbackReport {
  readonly runId: string;
  /** Fence on the new server to the switch back: writers waited. */
  readonly blackoutSeconds: number;
  readonly steps: readonly { readonly name: string; readonly seconds: number }[];
  readonly sequences: number;
  readonly recopiedRows: number;
  /** The old source, writable again: where the application goes. */
  readonly source: string;
}

interface Ctx extends CutoverContext {
  readonly rollback: RollbackMeta;
  held: HeldFence | null;
  pool: PausedPool | null;
  record: FenceRecord | null;
  fencedAt: number;
  /** The guardrail: fencedAt + --max-blackout. */
  deadline: number;
  blackoutSeconds: number;
}

function steps(): Step<Ctx>[] {
  const [gate, fence, ...rest] = unguardedSteps();
  const inside = rest.slice(0, -2);
  return [gate!, fence!, ...inside.map((s) => guarded(s, 'rollback')), ...rest.slice(-2)];
}

/** The rollback's steps; those between the fence and the switch back run under the guardrail (steps()). */
function unguardedSteps(): Step<Ctx>[] {
  return [
    {
      name: 'back-lag-gate',
      run: async (c, emit) => {
        // A reverse apply that keeps failing would never catch up: said at once, with its error, rather than after --catch-up-timeout.
        await applyHealthGate(c.src, c.rollback.names.subscription, { retry: 'pgrelocate rollback', side: 'the old source' });
        const lag = await waitForLag(c.target, c.rollback.names, c.opts.maxLagBytes, c.opts.catchUpTimeout, emit);
        if (lag.bytes > c.opts.maxLagBytes)
          throw new PgrelocateError(
            'lag-too-high',
            `The old source is ${lag.bytes} bytes behind the new server (threshold ${c.opts.maxLagBytes}); nothing was fenced.`,
            `Wait for it to catch up, or raise ${opt('maxLag')}.`,
          );
        return lag;
      },
    },
    {
      name: 'back-fence',
      run: async (c) => {
        const record = await planFence(c.dst, c.target.database, c.runId, describe(c.source));
        await prepareFence(c.dst, record.movedTo);
        c.record = record;
        c.fencedAt = Date.now();
        c.deadline = c.fencedAt + c.opts.maxBlackout * 1000;
        const p = c.opts.pgbouncer;
        const taken = await takeFence(
          c.target,
          record.tables,
          c.opts.maxBlackout,
          p ? { ...p, database: p.database ?? c.meta.sourceDatabase } : null,
        );
        c.held = taken.held;
        c.pool = taken.pool;
        return { tables: record.tables.length };
      },
    },
    {
      name: 'back-final-lsn',
      run: async (c) => {
        const lsn = (await c.dst.query<{ l: string }>(`SELECT pg_current_wal_lsn()::text AS l`)).rows[0]!.l;
        if (!(await waitForLsn(c.dst, c.rollback.names, lsn, c.opts.applyTimeout * 1000)))
          throw new PgrelocateError(
            'apply-timeout',
            `The old source did not apply the new server's last LSN ${lsn} in time; the new server's fence was lifted.`,
            'Check the subscription on the old source (pg_stat_subscription, its server log) and run the rollback again.',
          );
        return { lsn };
      },
    },
    { name: 'back-sequences', run: async (c) => ({ sequences: await syncSequences(c.dst, c.src, c.meta.filter) }) },
    {
      name: 'back-copy',
      run: async (c) => {
        // The old source's fence triggers would refuse this copy: set aside inside its transaction, never seen so by others.
        const tables = c.rollback.recopy;
        if (tables.length === 0) return { rows: 0 };
        await c.src.query('BEGIN');
        try {
          for (const t of tables) await c.src.query(`ALTER TABLE ${t} ${triggers('DISABLE')}`);
          const rows = await copyUnlogged(c.dst, c.src, tables);
          for (const t of tables) await c.src.query(`ALTER TABLE ${t} ${triggers('ENABLE')}`);
          await c.src.query('COMMIT');
          return { tables: tables.length, rows };
        } catch (e) {
          await c.src.query('ROLLBACK').catch(() => undefined);
          throw e;
        }
      },
    },
    {
      name: 'back-large-objects',
      run: async (c) => {
        const { count, bytes } = await copyLargeObjects(c.dst, c.src);
        return { count, bytes };
      },
    },
    {
      name: 'back-switch',
      run: async (c) => {
        await c.held!.proveHeld();
        c.record!.at = new Date().toISOString();
        await c.held!.makePermanent(c.record!);
        c.held = null;
        // The new server refuses writes from here; the old one takes them again.
        await unfence(c.src, null);
        if (c.pool) await release(c, c.source);
        c.blackoutSeconds = (Date.now() - c.fencedAt) / 1000;
        return { blackoutSeconds: c.blackoutSeconds };
      },
    },
    { name: 'back-remove-replication', run: async (c) => ({ removed: await disarmRollback(c.src, c.dst, c.rollback) }) },
  ];
}

/** The fence's triggers turned on or off in one ALTER TABLE. Pure. */
function triggers(verb: 'DISABLE' | 'ENABLE'): string {
  return FENCE_TRIGGERS.map((t) => `${verb} TRIGGER ${t}`).join(', ');
}

/** The paused pool resumed (pointed back at the old source first, after the switch back), once. */
function release(c: Ctx, at: ConnInfo | null): Promise<void> {
  const p = c.pool!;
  c.pool = null;
  return releasePool(p, at);
}

/** `rollback` of a run cut over with --rollback: the application back on the old source, nothing lost. */
export async function runRollback(
  source: ConnInfo,
  target: ConnInfo,
  options: Partial<StreamingOptions>,
  emit: Emit,
): Promise<RollbackReport> {
  return withRunLock(target, 'rollback', async () => {
    const opts = resolveStreamingOptions(options);
    const run = await previousRun(target);
    const meta = (run?.meta ?? null) as (StreamingMeta & { rollback?: RollbackMeta | null }) | null;
    if (!run || !meta || meta.phase !== 'done' || !meta.rollback)
      throw new PgrelocateError(
        'no-rollback',
        !run || !meta
          ? 'No streaming run is recorded on this target.'
          : meta.phase === 'rolled-back'
            ? `Run ${run.id} was already rolled back.`
            : meta.phase !== 'done'
              ? `Run ${run.id} has not been cut over (phase ${meta.phase}).`
              : `Run ${run.id} was cut over without --rollback: nothing carries the new server's writes back.`,
        meta?.phase === 'done' ? 'To go back, migrate again from the new server to the old one (a new run).' : 'Nothing to roll back.',
      );
    const src = await connect(source, 'source');
    const dst = await connect(target, 'target').catch(async (e: unknown) => {
      await src.end().catch(() => undefined);
      throw e;
    });
    const ctx: Ctx = {
      source,
      target,
      opts,
      meta,
      runId: run.id,
      src,
      dst,
      rollback: meta.rollback,
      held: null,
      pool: null,
      record: null,
      fencedAt: 0,
      deadline: 0,
      blackoutSeconds: 0,
    };
    try {
      await Promise.all([src, dst].map((c) => c.query('SET default_transaction_read_only = off')));
      return await withRunState(
        target,
        { resume: run.id },
        async (state) => {
          try {
            const results = await runSteps(steps(), ctx, emit, state);
            meta.phase = 'rolled-back';
            meta.rollback = null;
            // The old source is the database again: its fence is gone (the new server's is on the new server).
            meta.fence = null;
            await state.setMeta(meta);
            const n = (step: string, key: string): number =>
              Number((results.find((r) => r.name === step)?.detail as Record<string, unknown> | undefined)?.[key] ?? 0);
            const report: RollbackReport = {
              runId: run.id,
              blackoutSeconds: ctx.blackoutSeconds,
              steps: results.map((r) => ({ name: r.name, seconds: r.seconds })),
              sequences: n('back-sequences', 'sequences'),
              recopiedRows: n('back-copy', 'rows'),
              source: describe(source),
            };
            await state.setPhase('rolled-back');
            await state.finish('done', report);
            return report;
          } catch (e) {
            // Before the switch back nothing is permanent on the new server: its writers go on there.
            if (ctx.held) await ctx.held.release();
            if (ctx.pool) await release(ctx, null).catch(() => undefined);
            throw e;
          }
        },
        (state) => state.setPhase('done', 'done'),
      );
    } finally {
      await Promise.all([src, dst].map((c) => c.end().catch(() => undefined)));
    }
  });
}
