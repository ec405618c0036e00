/**
 * Names an application may really have: spaces, dots, double quotes, upper
 * case, in schemas, tables, columns, indexes and constraints; a table with no
 * columns; an index CLUSTER uses and one with a statistics target (built by
 * pg_restore; plain indexes are built by SQL). The copy splits
 * such tables into ranges, pipelines their indexes and key constraints, and
 * streams their changes; the target must end with the same rows and the same
 * catalog objects under the same names.
 */
import assert from 'node:assert/strict';
import type { ConnInfo } from '../../engine/conn';
import { cleanup, cutover } from '../../engine/strategies';
import { copyOnce } from '../../engine/copy/once';
import { sync } from '../../engine/strategies/logical';
import { verify } from '../../engine/verify';
import { freshDatabase, hasServer, newestPgDump, server, sql } from '../helpers/servers';

const SCHEMA = `
CREATE SCHEMA "Sales Data";
CREATE TABLE "Sales Data"."Order.Items ""x""" (
  "Order Id" bigint GENERATED ALWAYS AS IDENTITY,
  "Qty Ordered" int NOT NULL,
  note text,
  tags text[],
  payload jsonb,
  CONSTRAINT "pk of order.items" PRIMARY KEY ("Order Id"),
  CONSTRAINT "qty positive" CHECK ("Qty Ordered" > 0),
  CONSTRAINT "unique ""note""" UNIQUE (note)
);
CREATE INDEX "gin on payload" ON "Sales Data"."Order.Items ""x""" USING gin (payload jsonb_path_ops);
CREATE INDEX "lower(note) idx" ON "Sales Data"."Order.Items ""x""" (lower(note));
ALTER INDEX "Sales Data"."lower(note) idx" ALTER COLUMN 1 SET STATISTICS 500;
CREATE INDEX "by qty" ON "Sales Data"."Order.Items ""x""" ("Qty Ordered");
ALTER TABLE "Sales Data"."Order.Items ""x""" CLUSTER ON "by qty";
CREATE TABLE "Sales Data"."Line Items" (
  id bigserial PRIMARY KEY,
  "Order Id" bigint NOT NULL CONSTRAINT "fk to order.items" REFERENCES "Sales Data"."Order.Items ""x""" ("Order Id"),
  sku text
);
CREATE TABLE "Sales Data"."Events By Month" (at date NOT NULL, what text, PRIMARY KEY (at, what)) PARTITION BY RANGE (at);
CREATE TABLE "Sales Data"."Events 2025" PARTITION OF "Sales Data"."Events By Month" FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE "Sales Data"."Events Other" PARTITION OF "Sales Data"."Events By Month" DEFAULT;
CREATE TABLE "Sales Data"."no columns" ();
INSERT INTO "Sales Data"."no columns" DEFAULT VALUES;
INSERT INTO "Sales Data"."no columns" DEFAULT VALUES;
INSERT INTO "Sales Data"."Order.Items ""x""" ("Qty Ordered", note, tags, payload)
  SELECT 1 + i % 9, 'note ' || i, ARRAY['a' || i % 7, 'b'], jsonb_build_object('k', i, 'tag', 't' || i % 13)
  FROM generate_series(1, 20000) i;
INSERT INTO "Sales Data"."Line Items" ("Order Id", sku) SELECT 1 + i % 20000, 'sku-' || i FROM generate_series(1, 30000) i;
INSERT INTO "Sales Data"."Events By Month" SELECT DATE '2024-06-01' + i % 700, 'e' || i FROM generate_series(1, 5000) i;
`;

/** Every index and constraint of the user schemas, by table and name: what the target must match. */
async function catalog(c: ConnInfo): Promise<string[]> {
  const rows = await sql<{ x: string }>(
    c,
    `SELECT 'index ' || indexrelid::regclass::text || ' on ' || indrelid::regclass::text || ' clustered=' || indisclustered::text
            || ' stats=' || coalesce((SELECT string_agg(attnum || ':' || attstattarget, ',') FROM pg_attribute
                                       WHERE attrelid = indexrelid AND attstattarget >= 0), '') AS x FROM pg_index
      WHERE indrelid::regclass::text LIKE '"Sales Data".%'
     UNION ALL
     SELECT 'constraint ' || conname || ' ' || contype::text || ' valid=' || convalidated::text || ' on ' || conrelid::regclass::text
       FROM pg_constraint WHERE connamespace = '"Sales Data"'::regnamespace
     ORDER BY 1`,
  );
  return rows.map((r) => r.x);
}

async function setup(from: number, to: number): Promise<{ source: ConnInfo; target: ConnInfo }> {
  const source = await freshDatabase(await server(from), 'xsrc');
  await sql(source, SCHEMA);
  const target = await freshDatabase(await server(to), 'xtgt');
  return { source, target };
}

describe('names with spaces, dots, quotes and upper case', function () {
  before(async function () {
    if (!hasServer(14) || !hasServer(17) || (await newestPgDump()) < 14) this.skip();
  });

  it('copy: split ranges, pipelined indexes and constraints, same catalog, verified, whatever timeouts the databases set', async function () {
    const { source, target } = await setup(14, 17);
    // Timeouts a DBA may have set for applications: pgrelocate's sessions turn them off, as pg_dump's do.
    for (const c of [source, target])
      await sql(
        c,
        `ALTER DATABASE "${c.database}" SET statement_timeout = '5ms'; ALTER DATABASE "${c.database}" SET idle_in_transaction_session_timeout = '20ms'`,
      );
    const r = await copyOnce(source, target, { jobs: 2, splitBytes: 256 * 1024, verify: 'checksum', skipGlobals: true });
    assert.ok(r.copy!.parts > r.copy!.tables, 'the quoted table was split into ranges');
    assert.deepEqual(await catalog(target), await catalog(source));
    const v = await verify(source, target, { mode: 'checksum', jobs: 2 });
    assert.equal(v.ok, true, v.mismatches.join('\n'));
    const [n] = await sql<{ n: string }>(
      target,
      `SELECT count(*)::text AS n FROM "Sales Data"."Order.Items ""x""" WHERE payload @> '{"tag": "t3"}'`,
    );
    assert.ok(Number(n!.n) > 1000, 'the GIN-indexed column answers');
    const [none] = await sql<{ n: string }>(target, `SELECT count(*)::text AS n FROM "Sales Data"."no columns"`);
    assert.equal(none!.n, '2', 'rows of a table without columns are rows too');
  });

  it('sync and cutover: changes to those tables stream, verified, nothing left', async function () {
    const { source, target } = await setup(14, 17);
    // The table without columns has no key: its changes replicate with REPLICA IDENTITY FULL.
    await sync(source, target, { jobs: 2, splitBytes: 256 * 1024, skipGlobals: true, replicaIdentityFull: true });
    await sql(
      source,
      `INSERT INTO "Sales Data"."Order.Items ""x""" ("Qty Ordered", note) VALUES (3, 'after the snapshot');
       UPDATE "Sales Data"."Order.Items ""x""" SET "Qty Ordered" = 8 WHERE "Order Id" <= 50;
       DELETE FROM "Sales Data"."Line Items" WHERE id % 10 = 0;
       INSERT INTO "Sales Data"."Events By Month" VALUES ('2025-03-03', 'late');
       INSERT INTO "Sales Data"."no columns" DEFAULT VALUES;`,
    );
    const c = await cutover(source, target, { jobs: 2, verify: 'checksum' });
    assert.equal(c.verification!.ok, true, c.verification!.mismatches.join('\n'));
    assert.deepEqual(await catalog(target), await catalog(source));
    const [row] = await sql<{ q: string }>(
      target,
      `SELECT "Qty Ordered"::text AS q FROM "Sales Data"."Order.Items ""x""" WHERE note = 'after the snapshot'`,
    );
    assert.equal(row?.q, '3');
    const [none] = await sql<{ n: string }>(target, `SELECT count(*)::text AS n FROM "Sales Data"."no columns"`);
    assert.equal(none!.n, '3');
    await cleanup(source, target);
    const slots = await sql(source, `SELECT 1 FROM pg_replication_slots WHERE slot_name LIKE 'pgrelocate%'`);
    assert.equal(slots.length, 0);
  });
});
