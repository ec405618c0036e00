/**
 * The pglogical strategy on Debian's PostgreSQL 15 (the only server here that
 * carries the extension), under write load: tables added in batches, a
 * key-less table replicated insert-only and copied again at cutover, every
 * committed write on the target, and nothing of pglogical left on either side.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { ConnInfo } from '../../engine/conn';
import { findServerBinaries } from '../../engine/local/binaries';
import { startServer, type LocalServer } from '../../engine/local/cluster';
import { cleanup, cutover } from '../../engine/strategies';
import { plan } from '../../engine/plan';
import { pglogicalSync } from '../../engine/strategies/pglogical';
import { APP_ROLE, dropGeneratedColumns, loadSample } from '../../scripts/sample-db';
import { WriteLoad } from '../../scripts/write-load';
import { freshDatabase, newestPgDump, server, sql } from '../helpers/servers';
import { backLeftovers, cutOverAndBack } from '../helpers/rollback';

const PGLOGICAL_LIB = '/usr/lib/postgresql/15/lib/pglogical.so';

/** What pglogical or pgrelocate could leave in one database's catalogs. */
async function leftovers(conn: ConnInfo): Promise<string[]> {
  const rows = await sql<{ n: string }>(
    conn,
    `SELECT 'extension ' || extname AS n FROM pg_extension WHERE extname = 'pglogical'
     UNION ALL SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname IN ('pglogical', 'pgrelocate')
     UNION ALL SELECT 'slot ' || slot_name FROM pg_replication_slots WHERE database = current_database()
     UNION ALL SELECT 'origin ' || roname FROM pg_replication_origin
     UNION ALL SELECT 'event trigger ' || evtname FROM pg_event_trigger
     UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE '%pglogical%'`,
  );
  return rows.map((r) => r.n);
}

describe('pglogical strategy (Debian 15 + postgresql-15-pglogical)', function () {
  let src: LocalServer;
  let dst: LocalServer;

  before(async function () {
    if (!existsSync(PGLOGICAL_LIB) || !findServerBinaries(15) || (await newestPgDump()) < 15) {
      // npm test installs it when run as root (scripts/debian-packages.txt).
      throw new Error('pglogical is not installed: apt-get install -y postgresql-15 postgresql-15-pglogical');
    }
    const settings = { shared_preload_libraries: 'pglogical', max_worker_processes: 16 };
    [src, dst] = await Promise.all([
      startServer({ major: 15, name: 'pgl-src', settings }),
      startServer({ major: 15, name: 'pgl-dst', settings }),
    ]);
  });

  /** A source with one table `t` (one row), replicating by pglogical into a new target database. */
  async function replicatingOneTable(prefix: string): Promise<{ source: ConnInfo; target: ConnInfo }> {
    const source = await freshDatabase(src, prefix);
    await sql(source, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')`);
    const target = await freshDatabase(dst, `${prefix}t`);
    await pglogicalSync(source, target, { jobs: 2 });
    return { source, target };
  }

  it('check refuses generated columns (pglogical 2 crashes on them) and passes once the schema has none', async function () {
    const source = await freshDatabase(src, 'pplan');
    await sql(source, `CREATE TABLE t (id int PRIMARY KEY, a int, b int GENERATED ALWAYS AS (a * 2) STORED)`);
    const target = await freshDatabase(dst, 'pplant');
    const refused = await plan(source, target, { strategy: 'pglogical' });
    assert.equal(refused.ok, false);
    assert.ok(refused.findings.some((f) => f.code === 'pglogical-generated-columns' && /--strategy logical/.test(f.fix)));
    await sql(source, `ALTER TABLE t ALTER COLUMN b DROP EXPRESSION`);
    const p = await plan(source, target, { strategy: 'pglogical' });
    assert.equal(p.ok, true, p.text);
    assert.ok(p.steps.some((s) => s.name === 'tables'));
    // On a server without the preload, the check names the fix.
    const plain = await plan(await freshDatabase(await server(15), 'pplain'), await freshDatabase(await server(15), 'pplaint'), {
      strategy: 'pglogical',
    });
    assert.ok(
      plain.findings.some((f) => f.code === 'pglogical-not-preloaded-source' && /shared_preload_libraries/.test(f.fix)),
      plain.text,
    );
  });

  it('15 → 15 under write load: batches, key-less table insert-only then re-copied, cutover, ledger, verification, nothing left', async function () {
    const source = await freshDatabase(src, 'pglsrc');
    const sample = await loadSample(source, { sizeBytes: 4e6 });
    await dropGeneratedColumns(source);
    const target = await freshDatabase(dst, 'pgltgt');
    const load = new WriteLoad(source, { rate: 100, workers: 2, user: { name: APP_ROLE, password: sample.appPassword } });
    await load.start();
    const events: string[] = [];
    try {
      const s = await pglogicalSync(source, target, { jobs: 2, batchSize: 4, batchPause: 0.2 }, (e) => {
        if (e.type === 'log') events.push(e.message);
      });
      assert.equal(s.alreadyStreaming, false);
      assert.ok(s.batches >= 3, `tables added in ${s.batches} batches`);
      assert.ok(s.insertOnly.includes('"public"."schema_migrations"'), s.insertOnly.join(','));
      assert.ok(
        events.some((m) => /pausing/.test(m)),
        'paused between batches',
      );
      // Changes pglogical cannot carry for a key-less table: the cutover copies it again.
      // (the application's own rows, not the write load's, whose ledger must find them)
      const own = `SELECT version FROM public.schema_migrations WHERE version NOT LIKE 'load%' ORDER BY version`;
      await sql(source, `UPDATE public.schema_migrations SET version = version || '-x' WHERE version IN (${own} LIMIT 3)`);
      await sql(source, `DELETE FROM public.schema_migrations WHERE version IN (${own} DESC LIMIT 2)`);
      await new Promise((r) => setTimeout(r, 1000));
      const again = await pglogicalSync(source, target, { jobs: 2 });
      assert.equal(again.alreadyStreaming, true);
      const c = await cutover(source, target, { jobs: 2, verify: 'checksum' });
      // The key-less table, copied again whole inside the fence: as on the source (the pinned verification leaves it out).
      const whole = `SELECT md5(string_agg(version, ',' ORDER BY version)) AS m FROM public.schema_migrations`;
      assert.deepEqual(await sql(target, whole), await sql(source, whole));
      load.switchTo(target);
      await new Promise((r) => setTimeout(r, 500));
      const summary = await load.stop();
      assert.ok(c.blackoutSeconds < 10, `blackout ${c.blackoutSeconds}s`);
      assert.equal(c.verification!.ok, true, c.verification!.mismatches.join('\n'));
      assert.ok(c.keylessRows > 0, 'key-less tables copied again inside the fence');
      assert.ok(summary.committed > 50);
      const ledger = await load.ledger.check(target);
      assert.equal(ledger.ok, true, JSON.stringify(ledger).slice(0, 400));
      // The cutover already removed subscription, nodes, slot and the extensions pgrelocate created; the fence stays.
      assert.deepEqual(await leftovers(source), ['schema pgrelocate']);
      assert.deepEqual(
        (await leftovers(target)).filter((x) => x !== 'schema pgrelocate'),
        [],
      );
      await cleanup(source, target, { unfence: true });
      assert.deepEqual(await leftovers(target), []);
      assert.deepEqual(await leftovers(source), [], 'the fence lifted, its schema gone');
    } finally {
      await load.stop();
    }
  });

  it("a column added on the source: the cutover refuses before the fence, naming it; added on the target, the cutover goes through (pglogical's worker, if still down, restarted by the statements the gate names)", async function () {
    const { source, target } = await replicatingOneTable('pglcol');
    await sql(source, `ALTER TABLE t ADD COLUMN extra int; INSERT INTO t VALUES (2, 'b', 5)`);
    await new Promise((r) => setTimeout(r, 1000));
    // The schema check names the change first, before the lag gate would only find the apply stalled.
    await assert.rejects(cutover(source, target, { verify: 'count' }), (e: Error & { code?: string; fix?: string }) => {
      assert.equal(e.code, 'schema-changed', e.message);
      assert.match(e.message, /public\.t: new column extra integer/);
      assert.match(e.fix ?? '', /pglogical\.replication_set_add_table/);
      return true;
    });
    await sql(source, `INSERT INTO t VALUES (3, 'written after the refusal', 6)`);
    await sql(target, `ALTER TABLE t ADD COLUMN extra int`);
    // The target has the column. pglogical's worker, stopped by the change, may stay down for minutes (its manager's
    // back-off): then the gate refuses and names the statements that restart it at once; or it is back already.
    const second = await cutover(source, target, { verify: 'count' }).catch((e: Error & { code?: string; fix?: string }) => e);
    if (second instanceof Error) {
      assert.equal(second.code, 'apply-failing', second.message);
      const restart = /SELECT pglogical\.alter_subscription_disable.*$/.exec(second.fix ?? '')?.[0] ?? '';
      assert.ok(restart, `the fix says how to restart the worker: ${second.fix}`);
      // One statement at a time, as psql sends them (immediate := true refuses a transaction block).
      for (const stmt of restart.split(/;\s*/).filter(Boolean)) await sql(target, stmt);
      const t0 = Date.now();
      while ((await sql<{ s: string }>(target, `SELECT status AS s FROM pglogical.show_subscription_status()`))[0]?.s !== 'replicating') {
        assert.ok(Date.now() - t0 < 30_000, 'the apply worker came back');
        await new Promise((r) => setTimeout(r, 500));
      }
      process.stdout.write(`      pglogical's apply worker back ${((Date.now() - t0) / 1000).toFixed(1)} s after the fix's restart\n`);
    } else process.stdout.write(`      pglogical's apply worker was back on its own; the cutover went through\n`);
    const c = second instanceof Error ? await cutover(source, target, { verify: 'count' }) : second;
    assert.equal(c.verification!.ok, true, c.verification!.mismatches.join('\n'));
    const rows = await sql<{ id: number; extra: number | null }>(target, `SELECT id, extra FROM t ORDER BY id`);
    assert.deepEqual(
      rows.map((r) => [r.id, r.extra]),
      [
        [1, null],
        [2, 5],
        [3, 6],
      ],
    );
    await cleanup(source, target, { unfence: true });
  });

  it('sync on a replicating run makes the source’s new table (its rows synchronized by pglogical) and new column on the target; the cutover then goes through with every row', async function () {
    const { source, target } = await replicatingOneTable('pglddl');
    await sql(
      source,
      `CREATE TABLE public.added (id int PRIMARY KEY, v text);
       INSERT INTO public.added SELECT g, 'row ' || g FROM generate_series(1, 200) g;
       ALTER TABLE t ADD COLUMN extra int;
       INSERT INTO t VALUES (2, 'b', 5)`,
    );
    const again = await pglogicalSync(source, target, { jobs: 2 });
    assert.equal(again.alreadyStreaming, true);
    assert.deepEqual(again.schema.pending, []);
    assert.deepEqual([...again.schema.applied].sort(), [
      'new table public.added: made on the target and replicated, its rows copied',
      'public.t: new column extra integer',
    ]);
    assert.equal((await sql<{ n: number }>(target, `SELECT count(*)::int AS n FROM public.added`))[0]!.n, 200);
    await sql(source, `INSERT INTO public.added VALUES (201, 'streamed')`);
    const c = await cutover(source, target, { verify: 'count' });
    assert.equal(c.verification!.ok, true, c.verification!.mismatches.join('\n'));
    assert.equal((await sql<{ n: number }>(target, `SELECT count(*)::int AS n FROM public.added`))[0]!.n, 201);
    assert.deepEqual(await sql(target, `SELECT extra FROM t WHERE id = 2`), [{ extra: 5 }]);
    await cleanup(source, target, { unfence: true });
  });

  it('a table added to the set by hand with synchronize_data: the cutover waits for pglogical to copy it (refusing before its fence while the copy cannot finish), then goes through with every row', async function () {
    const { source, target } = await replicatingOneTable('pglsyn');
    const ddl = `CREATE TABLE big (id int PRIMARY KEY, v text)`;
    await sql(source, `${ddl}; INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 200000) g`);
    await sql(target, ddl);
    // pglogical's copy of it made slow on the target (a statement trigger that sleeps 8 s, fired by its COPY too).
    await sql(
      target,
      `CREATE FUNCTION slow_copy() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(8); RETURN NULL; END $$;
       CREATE TRIGGER slow_copy BEFORE INSERT ON big FOR EACH STATEMENT EXECUTE FUNCTION slow_copy();
       ALTER TABLE big ENABLE ALWAYS TRIGGER slow_copy`,
    );
    await sql(source, `SELECT pglogical.replication_set_add_table('default', 'big', true)`);
    await assert.rejects(cutover(source, target, { verify: 'count', catchUpTimeout: 2 }), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'lag-too-high', e.message);
      assert.match(e.message, /pglogical is still copying public\.big/);
      return true;
    });
    const c = await cutover(source, target, { verify: 'count' });
    assert.equal(c.verification!.ok, true, c.verification!.mismatches.join('\n'));
    assert.deepEqual(await sql(target, `SELECT count(*)::int AS n FROM big`), [{ n: 200000 }]);
    await cleanup(source, target, { unfence: true });
  });

  it('--exclude-schema: its tables stay out of the replication sets and its sequences out of the default set; changes to it are no schema change; the cutover fences only the moved tables', async function () {
    const source = await freshDatabase(src, 'pglflt');
    await sql(
      source,
      `CREATE SCHEMA keep; CREATE SCHEMA skip;
       CREATE TABLE keep.a (id serial PRIMARY KEY, v text); INSERT INTO keep.a (v) SELECT 'k' || g FROM generate_series(1, 50) g;
       CREATE TABLE skip.b (id serial PRIMARY KEY, v text); INSERT INTO skip.b (v) SELECT 's' || g FROM generate_series(1, 50) g`,
    );
    const target = await freshDatabase(dst, 'pglfltt');
    await pglogicalSync(source, target, {
      jobs: 2,
      filter: { includeSchema: [], excludeSchema: ['skip'], includeTable: [], excludeTable: [] },
    });
    const members = await sql<{ r: string }>(
      source,
      `SELECT set_reloid::regclass::text AS r FROM pglogical.replication_set_table
        UNION ALL SELECT set_seqoid::regclass::text FROM pglogical.replication_set_seq ORDER BY 1`,
    );
    assert.deepEqual(
      members.map((m) => m.r),
      ['keep.a', 'keep.a_id_seq'],
    );
    assert.deepEqual(await sql(target, `SELECT to_regnamespace('skip')::text AS s`), [{ s: null }]);
    await sql(
      source,
      `INSERT INTO keep.a (v) VALUES ('streamed'); INSERT INTO skip.b (v) VALUES ('stays'); CREATE TABLE skip.later (id int PRIMARY KEY)`,
    );
    const c = await cutover(source, target, { verify: 'count' });
    assert.equal(c.verification!.ok, true, c.verification!.mismatches.join('\n'));
    assert.deepEqual(
      c.verification!.tables.map((t) => t.table),
      ['"keep"."a"'],
    );
    assert.deepEqual(await sql(target, `SELECT last_value::int AS v FROM keep.a_id_seq`), [{ v: 51 }]);
    await assert.rejects(sql(source, `INSERT INTO keep.a (v) VALUES ('refused')`), /read-only/);
    await sql(source, `INSERT INTO skip.b (v) VALUES ('still written here')`);
    await cleanup(source, target, { unfence: true });
  });

  it('cutover --rollback, then rollback under write load: the way back is native logical replication, started once pglogical’s subscription is gone; every write made on the new server is on the old one', async function () {
    const source = await freshDatabase(src, 'pglrbs');
    const sample = await loadSample(source, { sizeBytes: 3e6 });
    await dropGeneratedColumns(source);
    const target = await freshDatabase(dst, 'pglrbt');
    const load = new WriteLoad(source, { rate: 100, workers: 2, user: { name: APP_ROLE, password: sample.appPassword } });
    await load.start();
    try {
      await pglogicalSync(source, target, { jobs: 2 });
      await cutOverAndBack(source, target, load, sample.appPassword);
    } finally {
      await load.stop();
    }
    await cleanup(source, target);
    assert.deepEqual(await backLeftovers(source, target), []);
  });

  it('cleanup after an abandoned sync removes subscription, nodes, slot and extension on both sides', async function () {
    const source = await freshDatabase(src, 'pglsrc2');
    await loadSample(source, { sizeBytes: 1e6 });
    await dropGeneratedColumns(source);
    const target = await freshDatabase(dst, 'pgltgt2');
    await pglogicalSync(source, target, { jobs: 2 });
    assert.ok((await leftovers(source)).some((x) => x.startsWith('slot ')));
    const removed = await cleanup(source, target);
    assert.ok(
      removed.some((r) => /pglogical node/.test(r)),
      removed.join('\n'),
    );
    assert.deepEqual(await leftovers(source), []);
    assert.deepEqual(await leftovers(target), []);
  });
});
