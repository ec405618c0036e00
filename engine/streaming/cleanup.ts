/**
 * `cleanup` and `status` for the streaming strategies: each strategy removes
 * its own artefacts (by the run's record, or by pgrelocate's names when the
 * record is gone); then what all of them share — slots, REPLICA IDENTITY
 * changes, the fence — and the state schema.
 */
import { withRunLock } from '../run-lock';
import { connect, ident, withClient, type ConnInfo } from '../conn';
import { type RunRecord } from '../state';
import type { StreamingStrategy } from '../strategies/names';
import { dropSlot, dropSubscription } from './artefacts';
import { asRecord, dropUnusedFence, readFence, sourceFence, unfence, type SourceFence } from './fence';
import type { CleanupOptions, StatusDetail, StreamingHooks } from './hooks';
import { previousRun, type StreamingMeta } from './options';
import { describeChange, schemaChanges } from './schema-drift';

/** Remove every artefact of the streaming runs on this target, whichever strategy made them. */
export async function runCleanup(
  source: ConnInfo,
  target: ConnInfo,
  opts: CleanupOptions,
  strategies: readonly StreamingHooks[],
): Promise<string[]> {
  return withRunLock(target, 'cleanup', async () => {
    const removed: string[] = [];
    const run = await previousRun(target).catch(() => null);
    const meta = (run?.meta ?? null) as StreamingMeta | null;
    const src = await connect(source, 'source');
    const dst = await connect(target, 'target');
    try {
      // The source may be fenced read-only after a cutover: this session still has work to do.
      await src.query('SET default_transaction_read_only = off');
      // A way back armed at the switch (--rollback): subscription on the source, publication and slot on the target.
      // Only the `_back` names: a source that is itself the target of another pgrelocate run keeps that run's subscription.
      await dst.query('SET default_transaction_read_only = off');
      const back = await src.query<{ subname: string }>(
        `SELECT subname FROM pg_subscription WHERE subname LIKE 'pgrelocate\\_%\\_back' AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      );
      for (const s of back.rows) if (await dropSubscription(src, s.subname)) removed.push(`subscription ${s.subname} (source)`);
      for (const s of (
        await dst.query<{ slot_name: string }>(
          `SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'pgrelocate\\_%\\_back' AND database = current_database()`,
        )
      ).rows) {
        await dropSlot(dst, s.slot_name);
        removed.push(`slot ${s.slot_name} (target)`);
      }
      for (const p of (
        await dst.query<{ pubname: string }>(`SELECT pubname FROM pg_publication WHERE pubname LIKE 'pgrelocate\\_%\\_back'`)
      ).rows) {
        await dst.query(`DROP PUBLICATION ${ident(p.pubname)}`);
        removed.push(`publication ${p.pubname} (target)`);
      }
      // After the way back: its slot on the target is gone before a strategy removes what it could not decode past (pglogical's node).
      for (const s of strategies) removed.push(...(await s.cleanup(src, dst, run?.strategy === s.name ? meta : null, opts)));
      const slots = await src.query<{ slot_name: string }>(
        `SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'pgrelocate\\_%' AND database = current_database()`,
      );
      for (const s of slots.rows) {
        await dropSlot(src, s.slot_name);
        removed.push(`slot ${s.slot_name} (source)`);
      }
      for (const t of meta?.replicaIdentityChanged ?? []) {
        await src.query(`ALTER TABLE ${t} REPLICA IDENTITY DEFAULT`);
        removed.push(`REPLICA IDENTITY FULL on ${t} (source, back to DEFAULT)`);
      }
      // The source's own record of its fence, so a cleanup after another one (which removed the run) still finds it.
      if (opts.unfence) {
        const lifted = await unfence(src, asRecord(meta?.fence));
        if (lifted)
          removed.push(
            `write fence (source: ${lifted.tables.length} tables' triggers${lifted.tablesOnly ? '' : ', read-only default of the database'}${lifted.roles.length ? ` and ${lifted.roles.length} roles` : ''})`,
          );
      } else {
        await dropUnusedFence(src);
        if (await readFence(src)) removed.push('kept: the write fence on the source (lift it with pgrelocate cleanup --unfence)');
      }
    } finally {
      await Promise.all([src.end(), dst.end()].map((p) => p.catch(() => undefined)));
    }
    await withClient(target, 'target', async (c) => {
      await c.query('SET default_transaction_read_only = off');
      // After a rollback the new server is fenced, as the source is after a cutover: kept unless --unfence, so an
      // application instance still pointed at it is refused rather than writing where nothing reads. Its function
      // (and record) stays in the schema; the run's state goes.
      if (!opts.unfence && (await readFence(c))) {
        await c.query('DROP TABLE IF EXISTS pgrelocate.source_schema, pgrelocate.steps, pgrelocate.runs');
        removed.push('state pgrelocate.runs, pgrelocate.steps, pgrelocate.source_schema (target)');
        removed.push('kept: the write fence on the new server, after the rollback (lift it with pgrelocate cleanup --unfence)');
        return;
      }
      if (await unfence(c, null)) removed.push('write fence (target, after the rollback)');
      await c.query('DROP SCHEMA IF EXISTS pgrelocate CASCADE');
      removed.push('schema pgrelocate (target)');
    });
    return removed;
  });
}

export interface StreamingStatus extends StatusDetail {
  readonly run: RunRecord | null;
  readonly phase: string | null;
  /** What the source itself says about a fence (with --source). */
  readonly sourceFence: SourceFence | null;
  /** With --source, while the run streams: the source's schema changes since the sync started that the target lacks (null: not asked, or no shape recorded). */
  readonly schemaChanges: readonly string[] | null;
}

/** The run recorded on the target, with how far behind the target is, in its strategy's terms. */
export async function runStatus(
  source: ConnInfo | null,
  target: ConnInfo,
  hooksFor: (s: StreamingStrategy) => StreamingHooks,
): Promise<StreamingStatus> {
  const run = await previousRun(target);
  const meta = (run?.meta ?? null) as StreamingMeta | null;
  const fence = source ? await withClient(source, 'source', (c) => sourceFence(c)) : null;
  if (!run || !meta) return { run, phase: null, lag: null, targetLagSeconds: null, sourceFence: fence, schemaChanges: null };
  const detail = await hooksFor(run.strategy as StreamingStrategy).status(source, target, meta);
  const changes =
    source && (meta.phase === 'copy' || meta.phase === 'streaming')
      ? await withClient(source, 'source', (s) =>
          withClient(target, 'target', async (t) => (await schemaChanges(s, t, run.id, meta.filter))?.map(describeChange) ?? null),
        )
      : null;
  return { run, phase: meta.phase, ...detail, sourceFence: fence, schemaChanges: changes };
}
