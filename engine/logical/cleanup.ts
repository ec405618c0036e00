/** `cleanup` and `status` for logical runs. */
import { withRunLock } from '../run-lock';
import { connect, ident, withClient, type ConnInfo } from '../conn';
import { removeBucardo } from '../bucardo/teardown';
import { controlFor } from '../bucardo/sync';
import { parseStatus } from '../bucardo/control';
import { type RunRecord } from '../state';
import { unfence } from './fence';
import { sourceLag, targetLagSeconds, type Lag } from './subscription';
import { dropSlot, dropSubscription } from './artefacts';
import { previousRun, type LogicalMeta } from './run-options';
import { removeProviderSide, removeSubscriberSide } from '../pglogical/teardown';

/** Remove every artefact of logical, pglogical and bucardo runs: subscription, slot, publication, pglogical nodes and extension, replica identity changes, state. */
export async function cleanupLogical(
  source: ConnInfo,
  target: ConnInfo,
  opts: { readonly unfence?: boolean; readonly bucardoUrl?: ConnInfo } = {},
): Promise<string[]> {
  return withRunLock(target, 'cleanup', () => cleanupLogicalLocked(source, target, opts));
}

async function cleanupLogicalLocked(
  source: ConnInfo,
  target: ConnInfo,
  opts: { readonly unfence?: boolean; readonly bucardoUrl?: ConnInfo } = {},
): Promise<string[]> {
  const removed: string[] = [];
  const run = await previousRun(target).catch(() => null);
  const meta = (run?.meta ?? null) as LogicalMeta | null;
  if (meta?.bucardo) {
    const buc = meta.bucardo;
    const src = await connect(source, 'source');
    const dst = await connect(target, 'target');
    try {
      removed.push(...(await removeBucardo(controlFor(buc, opts.bucardoUrl), buc, src, dst)));
    } finally {
      await Promise.all([src.end(), dst.end()].map((p) => p.catch(() => undefined)));
    }
  }
  await withClient(target, 'target', async (dst) => {
    // pg_subscription is shared by every database of the server: only this database's.
    const subs = await dst.query<{ subname: string }>(
      `SELECT subname FROM pg_subscription WHERE subname LIKE 'pgrelocate\\_%' AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    );
    for (const s of subs.rows) if (await dropSubscription(dst, s.subname)) removed.push(`subscription ${s.subname} (target)`);
    removed.push(...(await removeSubscriberSide(dst, meta?.pglogical)));
  });
  await withClient(source, 'source', async (src) => {
    // The source may be fenced read-only after a cutover: this session still has work to do.
    await src.query('SET default_transaction_read_only = off');
    const slots = await src.query<{ slot_name: string }>(
      `SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'pgrelocate\\_%' AND database = current_database()`,
    );
    for (const s of slots.rows) {
      await dropSlot(src, s.slot_name);
      removed.push(`slot ${s.slot_name} (source)`);
    }
    removed.push(...(await removeProviderSide(src, meta?.pglogical ? meta.names.slot : null, meta?.pglogical)));
    const pubs = await src.query<{ pubname: string }>(`SELECT pubname FROM pg_publication WHERE pubname LIKE 'pgrelocate\\_%'`);
    for (const p of pubs.rows) {
      await src.query(`DROP PUBLICATION ${ident(p.pubname)}`);
      removed.push(`publication ${p.pubname} (source)`);
    }
    for (const t of meta?.replicaIdentityChanged ?? []) {
      await src.query(`ALTER TABLE ${t} REPLICA IDENTITY DEFAULT`);
      removed.push(`REPLICA IDENTITY FULL on ${t} (source, back to DEFAULT)`);
    }
    if (opts.unfence && meta?.fence) {
      await unfence(src, meta.fence);
      removed.push('write fence (source)');
    }
  });
  await withClient(target, 'target', (c) => c.query('DROP SCHEMA IF EXISTS pgrelocate CASCADE'));
  removed.push('schema pgrelocate (target)');
  return removed;
}

export interface LogicalStatus {
  readonly run: RunRecord | null;
  readonly phase: string | null;
  readonly lag: Lag | null;
  readonly targetLagSeconds: number | null;
  /** bucardo: its sync's state as `bucardo status` reports it (Current state, Last good, Last bad, Last error…). */
  readonly bucardo?: Readonly<Record<string, string>>;
}

export async function logicalStatus(source: ConnInfo | null, target: ConnInfo): Promise<LogicalStatus> {
  const run = await previousRun(target);
  const meta = (run?.meta ?? null) as LogicalMeta | null;
  if (!run || !meta) return { run, phase: null, lag: null, targetLagSeconds: null };
  if (meta.bucardo) {
    // No slot: Bucardo's own view of its sync (through the run's passfile, while the run's directory exists).
    const b = meta.bucardo;
    const status = await controlFor(b)
      .run(['status', b.sync], { allowExit: [1] })
      .then((r) => Object.fromEntries(parseStatus(r.stdout)))
      .catch((e: Error) => ({ error: e.message }));
    return { run, phase: meta.phase, lag: null, targetLagSeconds: null, bucardo: status };
  }
  const lag = source && meta.phase === 'streaming' ? await withClient(source, 'source', (c) => sourceLag(c, meta.names)) : null;
  const secs = meta.phase === 'streaming' ? await withClient(target, 'target', (c) => targetLagSeconds(c, meta.names)) : null;
  return { run, phase: meta.phase, lag, targetLagSeconds: lag && lag.bytes === 0 ? 0 : secs };
}
