/**
 * Strategy `pglogical`: the whole schema first, then pglogical's provider and
 * subscriber nodes, tables added in batches. At cutover the sequences are
 * synchronized inside the fence, the target applies the last LSN, the
 * insert-only (key-less) tables are copied again, and both nodes are removed.
 */
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
