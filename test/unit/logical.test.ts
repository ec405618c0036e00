import assert from 'node:assert/strict';
import { parseUrl } from '../../engine/conn';
import type { TableInfo } from '../../engine/inspect';
import { tableInfo } from '../helpers/fixtures';
import { autoSplitBytes, copyStatements, planParts, type TableCopyInfo } from '../../engine/copy/copy';
import {
  foreignKeyTocKey,
  indexBuildOptions,
  indexCost,
  parseToc,
  splitPostData,
  type ForeignKeyInfo,
} from '../../engine/copy/post-data-plan';
import { Slots } from '../../engine/copy/slots';
import { schemaDumpArgs, sectionRestoreArgs } from '../../engine/copy/schema';
import { createPublicationSql, lsnToBigInt, namesFor, publishedTables } from '../../engine/streaming/snapshot';
import { conninfo, createSubscriptionSql } from '../../engine/streaming/subscription';
import { redact } from '../../engine/conn';

function table(name: string, bytes: number, over: Partial<TableInfo> = {}): TableInfo {
  return tableInfo(name, { bytes, totalBytes: bytes, rowEstimate: 0, ...over });
}

const info = (t: TableInfo, over: Partial<TableCopyInfo> = {}): TableCopyInfo => ({
  table: t,
  columns: ['id', 'v'],
  binary: true,
  intKey: 'id',
  ...over,
});

describe('logical strategy, pure parts', function () {
  it('names artefacts from the run id, safe for replication commands', function () {
    assert.deepEqual(namesFor('0f3c9a2e-1b7d-4c1e-9a55-aa00bb11cc22'), {
      slot: 'pgrelocate_0f3c9a2e1b7d',
      publication: 'pgrelocate_0f3c9a2e1b7d',
      subscription: 'pgrelocate_0f3c9a2e1b7d',
    });
  });

  it('publishes plain tables and leaf partitions, never unlogged tables or partitioned parents', function () {
    const ts = [table('a', 1), table('u', 1, { unlogged: true }), table('p', 0, { kind: 'p' }), table('p1', 1, { partitionOf: 'app.p' })];
    assert.deepEqual(
      publishedTables(ts).map((t) => t.name),
      ['a', 'p1'],
    );
    assert.equal(
      createPublicationSql('pgrelocate_x', publishedTables(ts)),
      'CREATE PUBLICATION pgrelocate_x FOR TABLE "app"."a", "app"."p1"',
    );
  });

  it('splits a large table with an integer key into covering, non-overlapping ranges, largest parts first', function () {
    const big = info(table('big', 10e9));
    const small = info(table('small', 1e6));
    const parts = planParts(
      [small, big],
      { jobs: 2, splitBytes: 4e9, sourceVersionNum: 120000 },
      new Map([['"app"."big"', [1n, 300n] as const]]),
    );
    assert.equal(parts.length, 4);
    assert.equal(parts[parts.length - 1]!.table.table.name, 'small');
    const where = parts.filter((p) => p.table.table.name === 'big').map((p) => p.where);
    assert.deepEqual(where, ['"id" < 101', '"id" >= 101 AND "id" < 201', '"id" >= 201']);
  });

  it('splits by ctid ranges without an integer key on 14+, and not at all before 14', function () {
    const t = info(table('nokey', 3 * 8192 * 1000), { intKey: null });
    const on14 = planParts([t], { jobs: 2, splitBytes: 8192 * 1000, sourceVersionNum: 140000 }, new Map());
    assert.deepEqual(
      on14.map((p) => p.where),
      [`ctid < '(1000,0)'::tid`, `ctid >= '(1000,0)'::tid AND ctid < '(2000,0)'::tid`, `ctid >= '(2000,0)'::tid`],
    );
    assert.equal(planParts([t], { jobs: 2, splitBytes: 8192 * 1000, sourceVersionNum: 130000 }, new Map()).length, 1);
  });

  it('COPY statements for a table without columns name none (COPY then takes every non-generated column)', function () {
    const t = info(table('marker', 0), { columns: [], intKey: null });
    assert.deepEqual(copyStatements({ table: t, where: null, estBytes: 0, label: 'm' }), {
      out: 'COPY "app"."marker" TO STDOUT (FORMAT binary)',
      in: 'COPY "app"."marker" FROM STDIN (FORMAT binary)',
    });
  });

  it('COPY statements: binary when every type allows it, ONLY for ranges, generated columns left out by the column list', function () {
    const p = { table: info(table('t', 1), { columns: ['id', 'Note'] }), where: null, estBytes: 1, label: 't' };
    assert.deepEqual(copyStatements(p), {
      out: 'COPY "app"."t" ("id", "Note") TO STDOUT (FORMAT binary)',
      in: 'COPY "app"."t" ("id", "Note") FROM STDIN (FORMAT binary)',
    });
    const r = copyStatements({ ...p, table: { ...p.table, binary: false }, where: '"id" < 5' });
    assert.equal(r.out, 'COPY (SELECT "id", "Note" FROM ONLY "app"."t" WHERE "id" < 5) TO STDOUT');
    assert.equal(r.in, 'COPY "app"."t" ("id", "Note") FROM STDIN');
  });

  it('the subscription connects with a quoted conninfo, attached to the existing slot without copying', function () {
    const src = parseUrl("postgresql://rep:it's%20a%20pw@db.internal:5433/shop?sslmode=require");
    assert.equal(
      conninfo(src),
      `host='db.internal' port='5433' user='rep' password='it\\'s a pw' dbname='shop' sslmode='require' application_name='pgrelocate-subscription'`,
    );
    const sql = createSubscriptionSql(namesFor('abc'), src);
    assert.match(sql, /WITH \(create_slot = false, slot_name = 'pgrelocate_abc', copy_data = false, enabled = true\)/);
    assert.doesNotMatch(redact(sql), /it.?s a pw/);
  });

  it('schema in two sections from one schema-only dump with the publications, without the subscriptions', function () {
    const c = parseUrl('postgresql://u:secret@h/db');
    const d = schemaDumpArgs(c, '/tmp/s.dump');
    assert.ok(
      d.includes('--schema-only') &&
        !d.includes('--no-publications') &&
        d.includes('--no-subscriptions') &&
        !d.join(' ').includes('secret'),
    );
    assert.ok(sectionRestoreArgs(c, '/f', 'post-data', 3, false).includes('-j'));
    assert.ok(!sectionRestoreArgs(c, '/f', 'pre-data', 3, false).includes('-j'));
    assert.ok(sectionRestoreArgs(c, '/f', 'pre-data', 3, true).includes('--clean'));
  });

  it('compares LSNs as numbers', function () {
    assert.ok(lsnToBigInt('1/0') > lsnToBigInt('0/FFFFFFFF'));
    assert.equal(lsnToBigInt('0/16B3748'), 0x16b3748n);
  });

  it('splits automatically: the largest table copies on every worker, between 64 MiB and 1 GiB', function () {
    assert.equal(autoSplitBytes(100 * 1024 ** 2, 2), 64 * 1024 ** 2);
    assert.equal(autoSplitBytes(64 * 1024 ** 3, 4), 1024 ** 3);
    assert.equal(autoSplitBytes(16 * 1024 ** 3, 8), 256 * 1024 ** 2);
  });

  it('post-data: indexes and key constraints per table, early foreign keys, every other entry of the section after every table', function () {
    // What `pg_restore -l --section=post-data` prints.
    const toc = [
      '3310; 2606 16440 CONSTRAINT app orders orders_pkey postgres',
      '3345; 1259 16420 INDEX app orders_user_id_idx postgres',
      '3346; 1259 16421 INDEX audit events_payload_gin postgres',
      '3350; 2606 16470 CHECK CONSTRAINT app orders total_positive postgres',
      '3360; 2606 16450 FK CONSTRAINT app line_items line_items_order_fk postgres',
      '3361; 0 0 COMMENT app CONSTRAINT line_items_order_fk ON line_items postgres',
      '3362; 2606 16451 FK CONSTRAINT app line_items line_items_product_fk postgres',
      '3363; 0 0 COMMENT app CONSTRAINT line_items_product_fk ON line_items postgres',
      '3370; 2620 16460 TRIGGER app orders orders_touch postgres',
      '3380; 0 0 INDEX ATTACH audit page_views_2025h1_user_id_idx postgres',
      '3390; 0 0 COMMENT app INDEX orders_user_id_idx postgres',
      '3395; 0 16390 ROW SECURITY app orders postgres',
      '3396; 9999 16500 SOME FUTURE TYPE app whatever postgres',
      '3397; 6104 16600 PUBLICATION - cdc_orders postgres',
      '3398; 6106 16601 PUBLICATION TABLE app cdc_orders orders postgres',
      '3399; 6104 16602 PUBLICATION - pgrelocate_4f2a postgres',
      '3400; 6106 16603 PUBLICATION TABLE app pgrelocate_4f2a orders postgres',
    ].join('\n');
    const entries = parseToc(toc);
    assert.deepEqual(
      entries.map((e) => [e.type, e.schema, e.tag]),
      [
        ['CONSTRAINT', 'app', 'orders orders_pkey'],
        ['INDEX', 'app', 'orders_user_id_idx'],
        ['INDEX', 'audit', 'events_payload_gin'],
        ['CHECK CONSTRAINT', 'app', 'orders total_positive'],
        ['FK CONSTRAINT', 'app', 'line_items line_items_order_fk'],
        ['COMMENT', 'app', 'CONSTRAINT line_items_order_fk ON line_items'],
        ['FK CONSTRAINT', 'app', 'line_items line_items_product_fk'],
        ['COMMENT', 'app', 'CONSTRAINT line_items_product_fk ON line_items'],
        ['TRIGGER', 'app', 'orders orders_touch'],
        ['INDEX ATTACH', 'audit', 'page_views_2025h1_user_id_idx'],
        ['COMMENT', 'app', 'INDEX orders_user_id_idx'],
        ['ROW SECURITY', 'app', 'orders'],
        ['', '', ''],
        ['PUBLICATION', '-', 'cdc_orders'],
        ['PUBLICATION TABLE', 'app', 'cdc_orders orders'],
        ['PUBLICATION', '-', 'pgrelocate_4f2a'],
        ['PUBLICATION TABLE', 'app', 'pgrelocate_4f2a orders'],
      ],
      'an entry of a type this module does not know is kept',
    );
    const fk = (name: string, refTable: string, index: string): [string, ForeignKeyInfo] => [
      foreignKeyTocKey('app', 'line_items', name),
      {
        table: 'app.line_items',
        refTable,
        index,
        constraint: name,
        qualifiedTable: 'app.line_items',
        sql: `ALTER TABLE ONLY app.line_items ADD CONSTRAINT ${name} FOREIGN KEY (x) REFERENCES ${refTable}(id)`,
      },
    ];
    const split = splitPostData(
      entries,
      new Map([
        ['app.orders_pkey', { table: 'app.orders', am: 'btree', cost: indexCost('btree', 4e6) }],
        ['app.orders_user_id_idx', { table: 'app.orders', am: 'btree', cost: indexCost('btree', 9e6) }],
        [
          'audit.events_payload_gin',
          {
            table: 'audit.events',
            am: 'gin',
            cost: indexCost('gin', 1e6),
            createSql: 'CREATE INDEX events_payload_gin ON audit.events USING gin (payload)',
          },
        ],
      ]),
      new Set(['app.orders', 'audit.events', 'app.line_items']),
      new Map([
        fk('line_items_order_fk', 'app.orders', 'app.orders_pkey'),
        // app.products is not copied by this run: its key waits for the rest.
        fk('line_items_product_fk', 'app.products', 'app.products_pkey'),
      ]),
    );
    assert.deepEqual([...split.perTable.keys()].sort(), ['app.orders', 'audit.events']);
    assert.deepEqual(
      split.perTable.get('app.orders')!.map((t) => t.label),
      ['app.orders_user_id_idx', 'app.orders_pkey'],
      "a table's most expensive index first",
    );
    assert.equal(split.perTable.get('audit.events')![0]!.am, 'gin', 'each task knows its access method');
    assert.match(split.perTable.get('audit.events')![0]!.createSql ?? '', /^CREATE INDEX/, 'a plain index is built by SQL');
    assert.ok(
      split.perTable.get('app.orders')!.every((t) => t.createSql === undefined),
      'indexes without a plain CREATE INDEX go through pg_restore',
    );
    assert.deepEqual(
      split.foreignKeys.map((f) => [f.constraint, f.line.split(';')[0]]),
      [['line_items_order_fk', '3360']],
      'a key between two copied tables whose referenced index is built with its table goes early',
    );
    assert.deepEqual(
      split.rest.map((l) => l.split(';')[0]),
      ['3350', '3361', '3362', '3363', '3370', '3380', '3390', '3395', '3396', '3397', '3398'],
      "every other entry, in the section's order: a constraint's comment after it, NOT VALID checks, row security, unknown types, the source's publications but not pgrelocate's own",
    );
    // The referenced index left to the rest (pg_restore cannot tell it apart): its key waits too.
    const late = splitPostData(
      parseToc('3360; 2606 16450 FK CONSTRAINT app line_items line_items_order_fk postgres'),
      new Map(),
      new Set(['app.orders', 'app.line_items']),
      new Map([fk('line_items_order_fk', 'app.orders', 'app.orders_pkey')]),
    );
    assert.deepEqual(late.foreignKeys, []);
    assert.equal(late.rest.length, 1);
  });

  it('index build settings: GIN builds with 64 MB of maintenance_work_mem, the rest with 512 MB', function () {
    assert.match(indexBuildOptions('gin'), /maintenance_work_mem=64MB/);
    assert.match(indexBuildOptions('btree'), /maintenance_work_mem=512MB/);
    assert.match(indexBuildOptions(undefined), /maintenance_work_mem=512MB/);
    for (const am of ['gin', 'btree']) assert.match(indexBuildOptions(am), /synchronous_commit=off/);
  });

  it('index cost: a GIN build costs more per byte than a btree', function () {
    assert.ok(indexCost('gin', 1e6) > indexCost('btree', 3e6));
    assert.ok(indexCost('brin', 1e6) < indexCost('btree', 1e6));
    assert.equal(indexCost('unknown_am', 1e6), indexCost('btree', 1e6));
  });

  it('slots: never more than the capacity; index builds (high) go before waiting copy parts', async function () {
    const slots = new Slots(2);
    const order: string[] = [];
    const a = await slots.acquire();
    const b = await slots.acquire();
    assert.equal(slots.inUse, 2);
    const low = slots.acquire().then((r) => (order.push('copy'), r));
    const high = slots.acquire(true).then((r) => (order.push('index'), r));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(order, [], 'nothing granted over capacity');
    a();
    a(); // a second release of the same grant is a no-op
    const rHigh = await high;
    assert.deepEqual(order, ['index']);
    assert.equal(slots.inUse, 2);
    b();
    const rLow = await low;
    assert.deepEqual(order, ['index', 'copy']);
    rHigh();
    rLow();
    assert.equal(slots.inUse, 0);
    assert.equal(await slots.run(async () => slots.inUse), 1);
    assert.equal(slots.inUse, 0);
    assert.throws(() => new Slots(0), /positive integer/);
  });
});
