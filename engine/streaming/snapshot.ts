/**
 * The consistent start of the logical strategy: a publication, then a
 * `pgoutput` slot created on a replication connection with an exported
 * snapshot. The copy reads under that snapshot and the subscription streams
 * from the slot, so every change after the snapshot arrives exactly once.
 * The publication comes first: pgoutput decodes with the catalog as of each
 * change, and a slot older than its publication fails with `publication … does
 * not exist`.
 */
import type pg from 'pg';
import { connect, orClose, QueryBatch, type ConnInfo } from '../conn';
import { qualified, type TableInfo } from '../inspect';

/** Names of the replication artefacts of one run (slot names are cluster-wide). */
export interface LogicalNames {
  readonly slot: string;
  readonly publication: string;
  readonly subscription: string;
}

/** The name every artefact of a run carries: `pgrelocate_` and the run id's first 12 hex digits. Pure. */
export function runTag(runId: string): string {
  return (
    'pgrelocate_' +
    runId
      .replace(/[^0-9a-f]/gi, '')
      .slice(0, 12)
      .toLowerCase()
  );
}

export function namesFor(runId: string): LogicalNames {
  const n = runTag(runId);
  return { slot: n, publication: n, subscription: n };
}

/** Tables that go into the publication: plain tables and leaf partitions; never unlogged or partitioned parents. */
export function publishedTables(tables: readonly TableInfo[]): TableInfo[] {
  return tables.filter((t) => t.kind === 'r' && !t.unlogged);
}

export function createPublicationSql(name: string, tables: readonly TableInfo[]): string {
  return tables.length > 0
    ? `CREATE PUBLICATION ${name} FOR TABLE ${tables.map((t) => qualified(t)).join(', ')}`
    : `CREATE PUBLICATION ${name}`;
}

/** An exported snapshot; valid while this connection stays open and idle. */
export class ExportedSnapshot {
  private constructor(
    private readonly client: pg.Client,
    readonly name: string,
    readonly lsn: string,
    /**
     * The snapshot's transaction ids (`txid_current_snapshot()`: xmin, xmax and
     * those in progress), for a plain snapshot. A later snapshot equal to it
     * proves that no transaction with an id began or ended since: nothing was
     * written on the server in between.
     */
    readonly xids: string | null = null,
  ) {}

  static async create(source: ConnInfo, slot: string): Promise<ExportedSnapshot> {
    // Through connect(), so the replication connection gets libpq's sslmode fallbacks too.
    const client = await connect(source, 'source (replication connection)', {
      application_name: 'pgrelocate-snapshot',
      replication: 'database',
    } as Partial<pg.ClientConfig>);
    try {
      const r = await client.query<{ snapshot_name: string; consistent_point: string }>(
        `CREATE_REPLICATION_SLOT ${slot} LOGICAL pgoutput EXPORT_SNAPSHOT`,
      );
      const row = r.rows[0]!;
      return new ExportedSnapshot(client, row.snapshot_name, row.consistent_point);
    } catch (e) {
      await client.end().catch(() => undefined);
      throw e;
    }
  }

  /**
   * A snapshot exported by an ordinary session (`pg_export_snapshot()`), for a
   * one-time copy that needs consistency but no slot.
   */
  static async plain(source: ConnInfo): Promise<ExportedSnapshot> {
    const client = await connect(source, 'source', { application_name: 'pgrelocate-snapshot' });
    return orClose(client, async () => {
      // One round trip for both.
      const b = new QueryBatch();
      void b.add('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const r = b.add<{ s: string; l: string; x: string }>(
        `SELECT pg_export_snapshot() AS s, (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS l,
                txid_current_snapshot()::text AS x`,
      );
      await b.run(client);
      const row = (await r)[0]!;
      return new ExportedSnapshot(client, row.s, row.l, row.x);
    });
  }

  async close(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }
}

/** Parse an LSN like `0/16B3748` into a bigint, for comparisons. */
export function lsnToBigInt(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt('0x' + (hi ?? '0')) << 32n) + BigInt('0x' + (lo ?? '0'));
}
