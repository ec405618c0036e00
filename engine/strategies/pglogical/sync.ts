/**
 * Strategy `pglogical` (seed 002): for sources where native logical
 * replication is missing (9.4–9.6) or not allowed. The schema goes first,
 * whole (pglogical applies changes through the target's primary keys); then
 * a provider node on the source, a subscriber node and a subscription on the
 * target; tables join the replication sets in batches with a pause between
 * them (adding everything at once broke replication in production in seed
 * 002), each batch waited for until pglogical reports its tables
 * replicating. Tables without a primary key go to `default_insert_only`; the
 * cutover copies them again in full inside the write fence. Sequences are in
 * the `default` set and synchronized at cutover. Its cutover, cleanup and
 * status hooks are in index.ts.
 */
import { opt } from '../../option-names';
import type pg from 'pg';
import { connect, serverVersionNum, withClient, type ConnInfo } from '../../conn';
import { settingList, tablesWithoutIdentity } from '../../check';
import { PgrelocateError } from '../../errors';
import { qualified, type Inventory } from '../../inspect';
import { ProgressMeter, type Emit, type Step } from '../../runner';
import { schemaFirstSteps } from '../../copy/schema-first';
import { reportBase, runStreamingSync, type StreamingRunContext, type StreamingReportBase } from '../../streaming/run';
import { publishedTables } from '../../streaming/snapshot';
import { conninfo, sourceLag, waitForLsn, type Lag } from '../../streaming/subscription';
import { newMeta, resolveStreamingOptions, type StreamingMeta, type StreamingOptions } from '../../streaming/options';
import { pglogicalNames, type PglogicalMeta } from './meta';

export interface PglogicalSyncReport extends StreamingReportBase {
  readonly tables: number;
  readonly insertOnly: readonly string[];
  readonly batches: number;
  readonly lag: Lag | null;
}

type Ctx = StreamingRunContext<StreamingMeta & { pglogical: PglogicalMeta }>;

/** Tables per batch, in order: largest first so the long syncs start early. Pure. */
export function batchesOf<T>(items: readonly T[], size: number): T[][] {
  const n = size > 0 ? size : Math.max(1, items.length);
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += n) out.push(items.slice(i, i + n));
  return out;
}

const hasExtension = (inv: Inventory): boolean => inv.database.extensions.some((e) => e.name === 'pglogical');

/**
 * How the subscriber connects to the provider. It asks for every float's
 * digits: pglogical copies tables and may send changes as text, and a
 * server before 12 prints a float with 15 digits otherwise, dropping
 * precision (pg_dump asks the same way). Servers with the
 * `output_plugin_libraries` allow-list (seen on Debian's 15.20: only
 * pgoutput and test_decoding) refuse pglogical's output plugin; a superuser
 * may extend the list for its own session, so the connection asks for it
 * rather than changing the source's configuration. Pure.
 */
export function providerConn(c: ConnInfo, allowList: string | null): ConnInfo {
  const libs = settingList(allowList ?? undefined);
  const extra = [
    '-c extra_float_digits=3',
    ...(allowList === null || libs.includes('pglogical_output')
      ? []
      : [`-c output_plugin_libraries=${[...libs, 'pglogical_output'].join(',')}`]),
  ].join(' ');
  const options = c.params['options'] ? `${c.params['options']} ${extra}` : extra;
  return { ...c, params: { ...c.params, options } };
}

async function providerDsn(ctx: Ctx): Promise<string> {
  const allow = await withClient(
    ctx.source,
    'source',
    async (c) => (await c.query<{ v: string | null }>(`SELECT current_setting('output_plugin_libraries', true) AS v`)).rows[0]?.v ?? null,
  );
  return conninfo(providerConn(ctx.opts.sourceForTarget ?? ctx.source, allow));
}

async function nodeExists(c: pg.Client, name: string): Promise<boolean> {
  return ((await c.query(`SELECT 1 FROM pglogical.node WHERE node_name = $1`, [name])).rowCount ?? 0) > 0;
}

/** pglogical's view of one table on the subscriber: 'replicating' (or 'synchronized') once its copy is done. */
async function tableStatus(dst: pg.Client, sub: string, table: string): Promise<string> {
  const r = await dst.query<{ status: string }>(`SELECT status FROM pglogical.show_subscription_table($1, $2::regclass)`, [sub, table]);
  return r.rows[0]?.status ?? 'unknown';
}

async function subscriptionStatus(dst: pg.Client, sub: string): Promise<{ status: string; slot: string | null }> {
  const r = await dst.query<{ status: string; slot_name: string | null }>(
    `SELECT status, slot_name FROM pglogical.show_subscription_status($1)`,
    [sub],
  );
  return { status: r.rows[0]?.status ?? 'unknown', slot: r.rows[0]?.slot_name ?? null };
}

/** How long a subscription may stay "down" before pgrelocate gives up (pglogical retries its apply worker on its own). */
const DOWN_GRACE_MS = 30_000;

/** Wait until the subscription is up; a subscription that stays down is an error naming where to look. */
async function waitReplicating(dst: pg.Client, sub: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let downSince: number | null = null;
  for (;;) {
    const s = await subscriptionStatus(dst, sub);
    if (s.status === 'replicating' && s.slot) return s.slot;
    downSince = s.status === 'down' ? (downSince ?? Date.now()) : null;
    if (Date.now() > deadline || (downSince !== null && Date.now() - downSince > DOWN_GRACE_MS))
      throw new PgrelocateError(
        'pglogical-down',
        `The pglogical subscription ${sub} is "${s.status}" after ${Math.round(timeoutMs / 1000)}s.`,
        `Read the target server log (pglogical apply worker), check that the target reaches the source (${opt('sourceUrlFromTarget')}), then rerun sync.`,
      );
    await new Promise((r) => setTimeout(r, 200));
  }
}

const SYNCED = new Set(['replicating', 'synchronized']);

/** How long a table sync may show no progress at all (status and target size unchanged) before pgrelocate stops. */
const STALL_MS = 120_000;

/**
 * Wait until pglogical reports the table replicating. Stops with the reason
 * when the subscription stays down, when nothing moves for STALL_MS (a sync
 * worker failing over and over: its error is in the target's server log), or
 * after the timeout.
 */
async function waitTableSynced(src: pg.Client, dst: pg.Client, sub: string, table: string, timeoutSeconds: number): Promise<void> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  let downSince: number | null = null;
  let last = '';
  let lastMove = Date.now();
  let lastNudge = 0;
  const canNudge = (await serverVersionNum(src)) >= 90600;
  for (;;) {
    const status = await tableStatus(dst, sub, table);
    if (SYNCED.has(status)) return;
    // A table in "catchup" waits for the apply worker to pass the end of its copy; on an idle source
    // nothing may carry it there (seen: a 120 s stall in CI). A logical message is a WAL record and
    // nothing else: no table, catalog or setting of the source changes.
    if (status === 'catchup' && canNudge && Date.now() - lastMove > 3000 && Date.now() - lastNudge > 3000) {
      lastNudge = Date.now();
      // Best effort: without the right to emit, the stall limit below still applies.
      await src.query(`SELECT pg_logical_emit_message(false, 'pgrelocate', 'pglogical catch-up')`).catch(() => undefined);
    }
    const size = (await dst.query<{ b: string }>(`SELECT pg_total_relation_size($1::regclass)::text AS b`, [table])).rows[0]!.b;
    if (`${status}/${size}` !== last) {
      last = `${status}/${size}`;
      lastMove = Date.now();
    }
    const s = await subscriptionStatus(dst, sub);
    downSince = s.status === 'down' ? (downSince ?? Date.now()) : null;
    const why =
      downSince !== null && Date.now() - downSince > DOWN_GRACE_MS
        ? `the subscription is down`
        : Date.now() - lastMove > STALL_MS
          ? `nothing moved for ${STALL_MS / 1000}s (table "${status}")`
          : Date.now() > deadline
            ? `still "${status}" after ${timeoutSeconds}s`
            : null;
    if (why) {
      const copying = await src.query<{ q: string }>(
        `SELECT left(query, 200) AS q FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'COPY%' AND pid <> pg_backend_pid() LIMIT 1`,
      );
      throw new PgrelocateError(
        'pglogical-table-sync',
        `pglogical has not synchronized ${table}: ${why}.${copying.rows[0] ? ` Source is running: ${copying.rows[0].q}` : ''}`,
        `Read the target server log (pglogical sync worker) for the error; fix it, then rerun sync: it resumes with this batch. Large tables may need a larger ${opt('catchUpTimeout')}.`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

export const PGLOGICAL_STEPS: readonly Step<Ctx>[] = [
  ...schemaFirstSteps<Ctx>(),
  {
    name: 'nodes',
    what: 'extension pglogical and a provider node on the source, a subscriber node on the target',
    async run(ctx) {
      const p = ctx.meta.pglogical;
      const created: string[] = [];
      const dsn = await providerDsn(ctx);
      await withClient(ctx.source, 'source', async (c) => {
        await c.query('CREATE EXTENSION IF NOT EXISTS pglogical');
        if (!(await nodeExists(c, p.providerNode))) {
          await c.query(`SELECT pglogical.create_node(node_name := $1, dsn := $2)`, [p.providerNode, dsn]);
          created.push(`provider ${p.providerNode}`);
        }
      });
      await withClient(ctx.target, 'target', async (c) => {
        await c.query('CREATE EXTENSION IF NOT EXISTS pglogical');
        if (!(await nodeExists(c, p.subscriberNode))) {
          await c.query(`SELECT pglogical.create_node(node_name := $1, dsn := $2)`, [p.subscriberNode, conninfo(ctx.target)]);
          created.push(`subscriber ${p.subscriberNode}`);
        }
      });
      return { created };
    },
  },
  {
    name: 'subscribe',
    what: 'sequences into the default set; a subscription to default + default_insert_only',
    async run(ctx) {
      const p = ctx.meta.pglogical;
      // Sequences first: they ride in the `default` set and are synchronized again at cutover.
      const seqSchemas = await withClient(ctx.source, 'source', async (c) => {
        if (ctx.meta.filter) {
          // A filtered run: the sequences it keeps, one by one (a schema's whole set would name ones the target lacks).
          const seqs = ctx.pre.source.database.sequences.map((s) => qualified(s));
          for (const s of seqs) await c.query(`SELECT pglogical.replication_set_add_sequence('default', $1::regclass, true)`, [s]);
          return [...new Set(ctx.pre.source.database.sequences.map((s) => s.schema))];
        }
        const r = await c.query<{ n: string }>(
          `SELECT DISTINCT n.nspname AS n FROM pg_class s JOIN pg_namespace n ON n.oid = s.relnamespace
            WHERE s.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pglogical') AND n.nspname NOT LIKE 'pg\\_%'`,
        );
        const schemas = r.rows.map((x) => x.n);
        if (schemas.length > 0) await c.query(`SELECT pglogical.replication_set_add_all_sequences('default', $1::text[], true)`, [schemas]);
        return schemas;
      });
      const slot = await withClient(ctx.target, 'target', async (c) => {
        const exists = await c.query(`SELECT 1 FROM pglogical.subscription WHERE sub_name = $1`, [p.subscription]);
        if (exists.rowCount === 0) {
          await c.query(
            `SELECT pglogical.create_subscription(subscription_name := $1, provider_dsn := $2,
                    replication_sets := ARRAY['default', 'default_insert_only'], synchronize_structure := false,
                    synchronize_data := true, forward_origins := '{}')`,
            [p.subscription, await providerDsn(ctx)],
          );
        }
        return waitReplicating(c, p.subscription, ctx.opts.catchUpTimeout * 1000);
      });
      // The lag, the final-LSN wait and cleanup follow pglogical's slot on the source.
      ctx.meta.names = { ...ctx.meta.names, slot };
      await ctx.state.setMeta(ctx.meta);
      return { subscription: p.subscription, slot, sequenceSchemas: seqSchemas };
    },
  },
  {
    name: 'tables',
    what: 'tables added in batches (--batch-size, --batch-pause), each batch waited for until replicating',
    async run(ctx, emit) {
      const p = ctx.meta.pglogical;
      const noKey = new Set(tablesWithoutIdentity(ctx.pre.source));
      const tables = publishedTables(ctx.pre.source.database.tables)
        .slice()
        .sort((a, b) => b.bytes - a.bytes)
        .map((t) => qualified(t));
      p.insertOnly = tables.filter((t) => noKey.has(t));
      await ctx.state.setMeta(ctx.meta);
      if (p.insertOnly.length > 0) {
        emit({
          type: 'log',
          level: 'warn',
          message: `no primary key, inserts only until the cutover copies them again: ${p.insertOnly.join(', ')}`,
        });
      }
      const batches = batchesOf(tables, ctx.opts.batchSize);
      const meter = new ProgressMeter(emit, 'tables', tables.length, 'tables');
      const src = await connect(ctx.source, 'source');
      const dst = await connect(ctx.target, 'target');
      try {
        let done = 0;
        for (const [i, batch] of batches.entries()) {
          if (i < p.batchesDone) {
            done += batch.length;
            continue;
          }
          for (const t of batch) {
            const set = noKey.has(t) ? 'default_insert_only' : 'default';
            const member = await src.query(`SELECT 1 FROM pglogical.replication_set_table WHERE set_reloid = $1::regclass`, [t]);
            if (member.rowCount === 0) await src.query(`SELECT pglogical.replication_set_add_table($1, $2::regclass, true)`, [set, t]);
          }
          for (const t of batch) {
            await waitTableSynced(src, dst, p.subscription, t, ctx.opts.catchUpTimeout);
            meter.update(++done, t);
          }
          p.batchesDone = i + 1;
          await ctx.state.setMeta(ctx.meta);
          if (i < batches.length - 1 && ctx.opts.batchPause > 0) {
            emit({ type: 'log', level: 'info', message: `batch ${i + 1}/${batches.length} replicating; pausing ${ctx.opts.batchPause}s` });
            await new Promise((r) => setTimeout(r, ctx.opts.batchPause * 1000));
          }
        }
        meter.update(tables.length, undefined, true);
      } finally {
        await Promise.all([src.end(), dst.end()].map((x) => x.catch(() => undefined)));
      }
      return { tables: tables.length, batches: batches.length, insertOnly: p.insertOnly };
    },
  },
  {
    name: 'catch-up',
    what: 'wait until the target has applied the source position',
    async run(ctx, emit) {
      const t0 = Date.now();
      const caughtUp = await withClient(ctx.source, 'source', async (c) => {
        const lsn = (await c.query<{ l: string }>(`SELECT pg_current_wal_lsn()::text AS l`)).rows[0]!.l;
        return waitForLsn(c, ctx.meta.names, lsn, ctx.opts.catchUpTimeout * 1000);
      });
      if (!caughtUp) emit({ type: 'log', level: 'warn', message: `not caught up after ${ctx.opts.catchUpTimeout}s; streaming continues` });
      ctx.meta.phase = 'streaming';
      await ctx.state.setMeta(ctx.meta);
      return { seconds: (Date.now() - t0) / 1000, caughtUp };
    },
  },
];

/** Sync with pglogical: schema, nodes, subscription, tables in batches, catch-up. Idempotent: an interrupted sync resumes. */
export async function pglogicalSync(
  source: ConnInfo,
  target: ConnInfo,
  options: Partial<StreamingOptions>,
  emit: Emit = () => undefined,
): Promise<PglogicalSyncReport> {
  const started = Date.now();
  const r = await runStreamingSync<Ctx['meta'], Ctx>({
    strategy: 'pglogical',
    source,
    target,
    opts: resolveStreamingOptions(options),
    emit,
    newMeta: (runId, pre) => ({
      ...newMeta(runId, pre.source.database.name),
      pglogical: {
        ...pglogicalNames(runId),
        insertOnly: [],
        batchesDone: 0,
        createdExtension: { source: !hasExtension(pre.source), target: !hasExtension(pre.target) },
      },
    }),
    context: (base) => base,
    steps: PGLOGICAL_STEPS,
    // Tables created on the source since the copy (each has a key: sync makes no key-less one): in the default set,
    // their rows synchronized by pglogical before sync returns.
    async addTables(src, dst, meta, tables) {
      const timeout = resolveStreamingOptions(options).catchUpTimeout;
      // A worker stopped by a column the target lacked (just added) is restarted by pglogical's manager only minutes later.
      const sub = meta.pglogical.subscription;
      const st = await dst.query<{ s: string }>(`SELECT status AS s FROM pglogical.show_subscription_status($1)`, [sub]);
      if (st.rows[0]?.s === 'down') {
        await dst.query(`SELECT pglogical.alter_subscription_disable($1, true)`, [sub]);
        await dst.query(`SELECT pglogical.alter_subscription_enable($1, true)`, [sub]);
      }
      for (const t of tables) await src.query(`SELECT pglogical.replication_set_add_table('default', $1::regclass, true)`, [t]);
      for (const t of tables) await waitTableSynced(src, dst, meta.pglogical.subscription, t, timeout);
    },
  });
  const meta = r.alreadyStreaming ? r.meta : r.ctx.meta;
  const lag = await withClient(source, 'source', (c) => sourceLag(c, meta.names));
  return {
    ...reportBase(r, started),
    tables: r.alreadyStreaming ? 0 : publishedTables(r.ctx.pre.source.database.tables).length,
    insertOnly: meta.pglogical.insertOnly,
    batches: meta.pglogical.batchesDone,
    lag,
  };
}
