/**
 * Verification while streaming, at one pinned point. Comparing a moving
 * source with a target a little behind it finds differences that are only lag;
 * comparing inside the cutover's fence makes the blackout grow with the data.
 * Instead: pgrelocate's session locks the migrated tables (writers wait, as at
 * the fence), the target applies the source's current LSN, each side exports a
 * snapshot — the same data, by construction — and the locks go. Writers waited
 * only for the apply to catch up (the lag, usually well under a second); the
 * comparison then runs in parallel inside the two snapshots for as long as it
 * takes, while writes and replication go on.
 */
import type pg from 'pg';
import { connect } from '../conn';
import { PgrelocateError } from '../errors';
import { ProgressMeter, type Emit } from '../runner';
import { filterSql, type TableFilter } from '../filter';
import { SYSTEM_SCHEMA_FILTER } from '../inspect';
import { verify, type VerifyMode, type VerifyResult } from '../verify';
import { migratedTables, takeFence, withinBound } from './fence';
import type { CutoverContext, StreamingHooks } from './hooks';

export interface PinnedVerification extends VerifyResult {
  /** How long writers on the source waited while the point was pinned. */
  readonly stallSeconds: number;
  /** Tables replication does not carry (unlogged, key-less ones copied again): compared after the cutover copies them, not here. */
  readonly excluded: readonly string[];
  /** The source's LSN both sides were read at (the strategies that stream through a slot). */
  readonly lsn: string | null;
}

/** Unlogged tables carry no WAL, so no replication (quoted names). */
export async function unloggedTables(src: pg.Client, filter?: TableFilter): Promise<string[]> {
  const r = await src.query<{ q: string }>(
    `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS q FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND c.relpersistence = 'u' AND ${SYSTEM_SCHEMA_FILTER} AND ${filterSql(filter)}`,
  );
  return r.rows.map((x) => x.q);
}

/** Open a session that will export a snapshot, before the window: connecting costs nothing inside it. */
async function exporter(c: CutoverContext, side: 'source' | 'target'): Promise<pg.Client> {
  return connect(side === 'source' ? c.source : c.target, side);
}

async function exportSnapshot(c: pg.Client): Promise<string> {
  await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
  return (await c.query<{ s: string }>('SELECT pg_export_snapshot() AS s')).rows[0]!.s;
}

/**
 * Pin a point (source locked, target caught up, a snapshot each side), lift
 * the locks, and compare the two snapshots table by table in parallel.
 */
export async function pinnedVerify(c: CutoverContext, hooks: StreamingHooks, mode: VerifyMode, emit: Emit): Promise<PinnedVerification> {
  const excluded = [...(await unloggedTables(c.src, c.meta.filter)), ...hooks.recopy(c.meta)];
  const tables = await migratedTables(c.src, c.meta.filter);
  const exporters = await Promise.all([exporter(c, 'source'), exporter(c, 'target')]);
  try {
    const maxMs = c.opts.maxBlackout * 1000;
    const { held } = await takeFence(c.source, tables, c.opts.maxBlackout);
    const t0 = Date.now() - held.lockWaitSeconds * 1000;
    let snapshots: { source: string; target: string };
    let lsn: string | null = null;
    try {
      const point = await withinBound(
        hooks.finalSync.run(c, emit),
        maxMs - (Date.now() - t0),
        () =>
          new PgrelocateError(
            'max-blackout',
            `The target did not catch up with the source within ${c.opts.maxBlackout}s while writes waited for the verification's pinned point; the writes went on and nothing was compared.`,
            'Wait until pgrelocate status shows the target keeping up, then verify again.',
          ),
      );
      lsn = (point as { lsn?: string } | undefined)?.lsn ?? null;
      const [source, target] = await Promise.all(exporters.map(exportSnapshot));
      snapshots = { source: source!, target: target! };
    } finally {
      await held.release();
    }
    const stallSeconds = (Date.now() - t0) / 1000;
    emit({
      type: 'log',
      level: 'info',
      message: `verification pinned: writers waited ${stallSeconds.toFixed(2)}s; comparing while writes go on`,
    });
    let meter: ProgressMeter | null = null;
    const v = await verify(c.source, c.target, {
      mode,
      jobs: c.opts.jobs,
      matviews: false,
      sequencesAndLargeObjects: false,
      snapshots,
      exclude: excluded,
      ...(c.meta.filter ? { filter: c.meta.filter } : {}),
      onProgress: (done, total) => (meter ??= new ProgressMeter(emit, 'verify', total, 'tables')).update(done),
    });
    return { ...v, stallSeconds, excluded, lsn };
  } finally {
    await Promise.all(exporters.map((x) => x.end().catch(() => undefined)));
  }
}
