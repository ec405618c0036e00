/**
 * Strategy `logical`: `sync` copies under a slot's exported snapshot and
 * streams every later change through a native subscription; at cutover the
 * target applies the source's last LSN, and the subscription, slot and
 * publication are removed.
 */
import { ident } from '../../conn';
import { dropSlot, dropSubscription } from '../../streaming/artefacts';
import type { StreamingHooks } from '../../streaming/hooks';
import { applyHealthGate, columnDrift, finalLsnStep, slotLagGate, slotStatus, waitTablesSynced } from '../../streaming/subscription';

export { sync, type SyncReport } from './sync';

export const logical: StreamingHooks = {
  name: 'logical',
  // A subscription whose apply keeps failing stops the cutover before the fence, whatever the lag says.
  async lagGate(c, emit) {
    await applyHealthGate(c.dst, c.meta.names.subscription, { diagnose: () => columnDrift(c.src, c.dst, c.meta.names.publication) });
    // A table added since the copy (REFRESH PUBLICATION) is copied by the subscription: all of it before the fence.
    await waitTablesSynced(c.dst, c.meta.names.subscription, c.opts.catchUpTimeout * 1000);
    return slotLagGate(c, emit);
  },
  finalSync: finalLsnStep,
  // Key-less tables REPLICA IDENTITY FULL cannot match are not published.
  recopy: (meta) => meta.fullCopy ?? [],
  recopyUnreplicated: true,
  async removeReplication(c) {
    await dropSubscription(c.dst, c.meta.names.subscription);
    await dropSlot(c.src, c.meta.names.slot);
    await c.src.query(`DROP PUBLICATION IF EXISTS ${ident(c.meta.names.publication)}`);
  },
  async cleanup(src, dst) {
    const removed: string[] = [];
    // pg_subscription is shared by every database of the server: only this database's.
    const subs = await dst.query<{ subname: string }>(
      `SELECT subname FROM pg_subscription WHERE subname LIKE 'pgrelocate\\_%' AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    );
    for (const s of subs.rows) if (await dropSubscription(dst, s.subname)) removed.push(`subscription ${s.subname} (target)`);
    const pubs = await src.query<{ pubname: string }>(`SELECT pubname FROM pg_publication WHERE pubname LIKE 'pgrelocate\\_%'`);
    for (const p of pubs.rows) {
      await src.query(`DROP PUBLICATION ${ident(p.pubname)}`);
      removed.push(`publication ${p.pubname} (source)`);
    }
    return removed;
  },
  status: slotStatus,
};
