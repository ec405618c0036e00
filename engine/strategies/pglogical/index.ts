/**
 * Strategy `pglogical`: the whole schema first, then pglogical's provider and
 * subscriber nodes, tables added in batches. At cutover the sequences are
 * synchronized inside the fence, the target applies the last LSN, the
 * insert-only (key-less) tables are copied again, and both nodes are removed.
 */
import type pg from 'pg';
import { PgrelocateError } from '../../errors';
import type { StreamingHooks } from '../../streaming/hooks';
import type { StreamingMeta } from '../../streaming/options';
import {
  applyHealthGate,
  finalLsnStep,
  pglogicalApplySample,
  pglogicalColumnDrift,
  slotLagGate,
  slotStatus,
} from '../../streaming/subscription';
import type { PglogicalMeta } from './meta';
import { removeProviderSide, removeSubscriberSide } from './teardown';

export { pglogicalSync, type PglogicalSyncReport } from './sync';

/**
 * Wait until the subscription has no table whose copy is under way
 * (pglogical.local_sync_status not yet synced or ready): before that its rows
 * are not all on the target, whatever the lag says. Throws naming them after
 * `timeoutMs`.
 */
export async function waitSetTablesSynced(dst: pg.Client, sub: string, timeoutMs: number): Promise<void> {
  const started = Date.now();
  for (;;) {
    const r = await dst.query<{ t: string }>(
      `SELECT quote_ident(sync_nspname) || '.' || quote_ident(sync_relname) AS t FROM pglogical.local_sync_status
        WHERE sync_relname IS NOT NULL AND sync_status NOT IN ('r', 'y')
          AND sync_subid = (SELECT sub_id FROM pglogical.subscription WHERE sub_name = $1)`,
      [sub],
    );
    if (r.rows.length === 0) return;
    if (Date.now() - started > timeoutMs)
      throw new PgrelocateError(
        'lag-too-high',
        `pglogical is still copying ${r.rows.map((x) => x.t).join(', ')} after ${Math.round(timeoutMs / 1000)}s; nothing was fenced.`,
        'Wait for the copy (pglogical.show_subscription_table on the target), then run the cutover again.',
      );
    await new Promise((res) => setTimeout(res, 200));
  }
}

export type PglogicalRunMeta = StreamingMeta & { pglogical: PglogicalMeta };

export const pglogical: StreamingHooks<PglogicalRunMeta> = {
  name: 'pglogical',
  // pglogical's apply worker stops on an error and is restarted by its manager: the same gate as logical's.
  async lagGate(c, emit) {
    const sub = c.meta.pglogical.subscription;
    await applyHealthGate(c.dst, sub, {
      sample: pglogicalApplySample(c.dst, sub),
      diagnose: () => pglogicalColumnDrift(c.src, c.dst),
    }).catch((e: unknown) => {
      // pglogical's manager restarts a failed worker only after minutes (measured: 169 s): say how to restart it at once.
      if (e instanceof PgrelocateError && e.code === 'apply-failing')
        throw new PgrelocateError(
          e.code,
          e.message,
          `${e.fix} Once fixed, restart pglogical's worker on the target at once: SELECT pglogical.alter_subscription_disable('${sub}', true); SELECT pglogical.alter_subscription_enable('${sub}', true);`,
        );
      throw e;
    });
    // A table added to a set with synchronize_data (by sync, or by hand) counts only once pglogical has copied it.
    await waitSetTablesSynced(c.dst, sub, c.opts.catchUpTimeout * 1000);
    return slotLagGate(c, emit);
  },
  fencedSteps: [
    {
      // pglogical carries sequence values only when asked; the exact values are set again after the final LSN.
      name: 'pglogical-sequences',
      async run(c) {
        const seqs = await c.src.query<{ s: string }>(`SELECT set_seqoid::regclass::text AS s FROM pglogical.replication_set_seq`);
        for (const { s } of seqs.rows) await c.src.query(`SELECT pglogical.synchronize_sequence($1::regclass)`, [s]);
        return { sequences: seqs.rows.length };
      },
    },
  ],
  finalSync: finalLsnStep,
  // default_insert_only tables missed their updates and deletes.
  recopy: (meta) => meta.pglogical.insertOnly,
  async removeReplication(c) {
    // A way back armed: its slot on the target must decode past this, so pglogical's node there stays until cleanup.
    await removeSubscriberSide(c.dst, c.meta.pglogical, !!c.meta.rollback);
    await removeProviderSide(c.src, c.meta.names.slot, c.meta.pglogical);
  },
  async cleanup(src, dst, meta) {
    return [
      ...(await removeSubscriberSide(dst, meta?.pglogical)),
      ...(await removeProviderSide(src, meta ? meta.names.slot : null, meta?.pglogical)),
    ];
  },
  status: slotStatus,
};
