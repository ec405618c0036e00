/**
 * Strategy `logical`: the parallel copy under a slot's exported snapshot, a
 * publication, and a native subscription on that slot that streams every
 * later change.
 */
import { ident, withClient, type ConnInfo } from '../../conn';
import { fullCopyTables, tablesWithoutIdentity } from '../../check';
import { qualified } from '../../inspect';
import { type Emit, type Step } from '../../runner';
import { type CopyResult } from '../../copy/copy';
import { createPublicationSql, publishedTables } from '../../streaming/snapshot';
import { createSubscription, sourceLag, waitForLsn, waitTablesSynced, type Lag } from '../../streaming/subscription';
import { reportBase, runStreamingSync, type StreamingReportBase } from '../../streaming/run';
import { globalsSteps, parallelCopySteps, type CopyContext } from '../../copy/steps';
import { newMeta, resolveStreamingOptions, type StreamingMeta, type StreamingOptions } from '../../streaming/options';

export interface SyncReport extends StreamingReportBase {
  readonly copy: CopyResult | null;
  readonly catchUpSeconds: number | null;
  /** WAL written on the source between the snapshot and the subscription: what catch-up applied. */
  readonly backlogBytes: number | null;
  readonly lag: Lag | null;
}

const [preData, copy, postData] = parallelCopySteps<CopyContext>();

export const LOGICAL_STEPS: readonly Step<CopyContext>[] = [
  ...globalsSteps<CopyContext>(),
  preData!,
  {
    name: 'replica-identity',
    what: 'REPLICA IDENTITY FULL on key-less tables, only with --replica-identity-full',
    async run(ctx, emit) {
      const whole = new Set(fullCopyTables(ctx.pre.source));
      const tables = tablesWithoutIdentity(ctx.pre.source).filter((t) => !whole.has(t));
      if (tables.length === 0 || !ctx.opts.replicaIdentityFull) return { changed: [] };
      await withClient(ctx.source, 'source', async (c) => {
        for (const t of tables) {
          if (ctx.meta.replicaIdentityChanged.includes(t)) continue;
          await c.query(`ALTER TABLE ${t} REPLICA IDENTITY FULL`);
          ctx.meta.replicaIdentityChanged.push(t);
          await ctx.state.setMeta(ctx.meta);
        }
      });
      emit({
        type: 'log',
        level: 'warn',
        message: `REPLICA IDENTITY FULL set on the source for ${tables.join(', ')} (restored at cleanup)`,
      });
      return { changed: tables };
    },
  },
  {
    name: 'publication',
    what: 'a publication of every logged table on the source',
    async run(ctx, emit) {
      // Only with --replica-identity-full: without it, check refuses every key-less table.
      const whole = ctx.opts.replicaIdentityFull ? fullCopyTables(ctx.pre.source) : [];
      if (!ctx.meta.fullCopy && whole.length > 0) {
        ctx.meta.fullCopy = whole;
        await ctx.state.setMeta(ctx.meta);
        emit({
          type: 'log',
          level: 'warn',
          message: `not published (no key, and a column REPLICA IDENTITY FULL cannot compare); copied again in full at cutover: ${whole.join(', ')}`,
        });
      }
      const skip = new Set(ctx.meta.fullCopy ?? []);
      const tables = publishedTables(ctx.pre.source.database.tables).filter((t) => !skip.has(qualified(t)));
      await withClient(ctx.source, 'source', async (c) => {
        const exists = await c.query(`SELECT 1 FROM pg_publication WHERE pubname = $1`, [ctx.meta.names.publication]);
        if (exists.rowCount === 0) await c.query(createPublicationSql(ctx.meta.names.publication, tables));
      });
      return { publication: ctx.meta.names.publication, tables: tables.length };
    },
  },
  copy!,
  postData!,
  {
    name: 'subscribe',
    what: 'native subscription on that slot (copy_data = false): every change since the snapshot',
    async run(ctx) {
      await withClient(ctx.target, 'target', async (c) => {
        const exists = await c.query(`SELECT 1 FROM pg_subscription WHERE subname = $1`, [ctx.meta.names.subscription]);
        if (exists.rowCount === 0) await createSubscription(c, ctx.meta.names, ctx.opts.sourceForTarget ?? ctx.source);
      });
      ctx.meta.phase = 'streaming';
      await ctx.state.setMeta(ctx.meta);
      return { subscription: ctx.meta.names.subscription };
    },
  },
  {
    name: 'catch-up',
    what: 'wait until the target is within --max-lag of the source',
    async run(ctx, emit) {
      // Catch-up = the backlog that built up during the copy is applied: the target confirms the
      // source's position as of now. Then report how far behind it is.
      const t0 = Date.now();
      const r = await withClient(ctx.source, 'source', async (c) => {
        const row = (
          await c.query<{ lsn: string; backlog: string | null }>(
            `SELECT pg_current_wal_lsn()::text AS lsn, pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::bigint::text AS backlog`,
            [ctx.meta.snapshotLsn ?? '0/0'],
          )
        ).rows[0]!;
        const caughtUp = await waitForLsn(c, ctx.meta.names, row.lsn, ctx.opts.catchUpTimeout * 1000);
        return { ...row, caughtUp };
      });
      const seconds = (Date.now() - t0) / 1000;
      if (!r.caughtUp) {
        emit({ type: 'log', level: 'warn', message: `the backlog is not applied after ${ctx.opts.catchUpTimeout}s; streaming continues` });
      }
      const lag = await withClient(ctx.source, 'source', (c) => sourceLag(c, ctx.meta.names));
      return { seconds, backlogBytes: Number(r.backlog ?? 0), caughtUp: r.caughtUp, lagBytes: lag?.bytes ?? null };
    },
  },
];

/** Copy, then stream. Idempotent: an interrupted sync resumes; a streaming one returns at once. */
export async function sync(
  source: ConnInfo,
  target: ConnInfo,
  options: Partial<StreamingOptions>,
  emit: Emit = () => undefined,
): Promise<SyncReport> {
  const started = Date.now();
  const r = await runStreamingSync<StreamingMeta, CopyContext>({
    strategy: 'logical',
    source,
    target,
    opts: resolveStreamingOptions(options),
    emit,
    newMeta: (runId, pre) => newMeta(runId, pre.source.database.name),
    context: (base) => base,
    steps: LOGICAL_STEPS,
    // Tables created on the source since the copy: published, and copied by the subscription before sync returns.
    async addTables(src, dst, meta, tables) {
      await src.query(`ALTER PUBLICATION ${ident(meta.names.publication)} ADD TABLE ${tables.join(', ')}`);
      await dst.query(`ALTER SUBSCRIPTION ${ident(meta.names.subscription)} REFRESH PUBLICATION WITH (copy_data = true)`);
      await waitTablesSynced(dst, meta.names.subscription, resolveStreamingOptions(options).catchUpTimeout * 1000);
    },
  });
  const meta = r.alreadyStreaming ? r.meta : r.ctx.meta;
  const lag = await withClient(source, 'source', (c) => sourceLag(c, meta.names));
  const base = reportBase(r, started);
  if (r.alreadyStreaming) return { ...base, copy: null, catchUpSeconds: null, backlogBytes: null, lag };
  // The catch-up step's own figures, as it recorded them.
  const catchUp = r.results.find((x) => x.name === 'catch-up')?.detail as { seconds: number; backlogBytes: number } | undefined;
  return {
    ...base,
    copy: r.ctx.copy ?? null,
    catchUpSeconds: catchUp?.seconds ?? null,
    backlogBytes: catchUp?.backlogBytes ?? null,
    lag,
  };
}
