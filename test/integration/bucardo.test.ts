/**
 * The bucardo strategy with a real Bucardo (Debian's 5.6): an npm-packaged
 * PostgreSQL 14 source, a 17 target, the control database on Debian's 15
 * with PL/Perl, under write load. Ends with the ledger, verification, and a
 * catalog check that nothing of Bucardo remains on the source or target and
 * the control database is gone.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { ConnInfo } from '../../engine/conn';
import { BucardoControl } from '../../engine/strategies/bucardo/control';
import { bucardoSync } from '../../engine/strategies/bucardo';
import { startServer, type LocalServer } from '../../engine/local/cluster';
import { cleanup, cutover, status } from '../../engine/strategies';
import { APP_ROLE, loadSample } from '../../scripts/sample-db';
import { WriteLoad } from '../../scripts/write-load';
import { freshDatabase, hasServer, newestPgDump, server, sql } from '../helpers/servers';
import { backLeftovers, cutOverAndBack } from '../helpers/rollback';

/** Bucardo's traces in one database's catalogs. */
async function traces(conn: ConnInfo): Promise<string[]> {
  const rows = await sql<{ n: string }>(
    conn,
    `SELECT 'schema ' || nspname AS n FROM pg_namespace WHERE nspname = 'bucardo'
     UNION ALL SELECT 'trigger ' || tgrelid::regclass::text || '.' || tgname FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE 'bucardo%'
     UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE proname LIKE 'bucardo%'`,
  );
  return rows.map((r) => r.n);
}

describe('bucardo strategy (Debian bucardo 5.6, control database on 15 with PL/Perl)', function () {
  let ctl: LocalServer;

  before(async function () {
    if (!existsSync('/usr/bin/bucardo') || !existsSync('/usr/lib/postgresql/15/lib/plperl.so'))
      throw new Error('Bucardo is not installed: apt-get install -y bucardo postgresql-plperl-15');
    if (!hasServer(14) || (await newestPgDump()) < 14) this.skip();
    ctl = await startServer({ major: 15, name: 'bucardo-ctl' });
  });

  it('14 → 17 under write load: onetimecopy, deltas, key-less tables copied at cutover, ledger, verification, nothing left', async function () {
    const source = await freshDatabase(await server(14), 'bsrc');
    const sample = await loadSample(source, { sizeBytes: 4e6 });
    const target = await freshDatabase(await server(17), 'btgt');
    const load = new WriteLoad(source, { rate: 100, workers: 2, user: { name: APP_ROLE, password: sample.appPassword } });
    await load.start();
    const steps: string[] = [];
    try {
      const s = await bucardoSync(source, target, ctl.conn(), { jobs: 2 }, (e) => {
        if (e.type === 'step' && e.status === 'done') steps.push(e.name);
      });
      assert.deepEqual(steps, ['globals', 'schema', 'control', 'sync-setup', 'onetimecopy', 'catch-up']);
      assert.ok(s.fullCopy.includes('"public"."schema_migrations"'), s.fullCopy.join(','));
      assert.ok(
        (await traces(source)).some((t) => t.startsWith('trigger ')),
        'Bucardo put its delta triggers on the source',
      );
      // Changes Bucardo cannot carry for a key-less table: the cutover copies it in full.
      await sql(
        source,
        `UPDATE public.schema_migrations SET version = version || '-x' WHERE version IN (SELECT version FROM public.schema_migrations WHERE version NOT LIKE 'load%' LIMIT 2)`,
      );
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal((await bucardoSync(source, target, ctl.conn(), { jobs: 2 })).alreadyStreaming, true);
      const c = await cutover(source, target, { jobs: 2, verify: 'checksum' });
      // The key-less table, copied before the fence and again inside it if written since: as on the source (the pinned verification leaves it out).
      const whole = `SELECT md5(string_agg(version, ',' ORDER BY version)) AS m FROM public.schema_migrations`;
      assert.deepEqual(await sql(target, whole), await sql(source, whole));
      load.switchTo(target);
      await new Promise((r) => setTimeout(r, 500));
      const summary = await load.stop();
      assert.ok(c.blackoutSeconds < 10, `blackout ${c.blackoutSeconds}s`);
      assert.equal(c.verification!.ok, true, c.verification!.mismatches.join('\n'));
      assert.ok(c.precopiedRows > 0);
      assert.ok(summary.committed > 50);
      const ledger = await load.ledger.check(target);
      assert.equal(ledger.ok, true, JSON.stringify(ledger).slice(0, 400));
      assert.deepEqual(await traces(source), []);
      assert.deepEqual(await traces(target), []);
      const dbs = await sql<{ d: string }>(ctl.conn(), `SELECT datname AS d FROM pg_database WHERE datname = 'bucardo'`);
      assert.deepEqual(dbs, [], 'control database dropped');
      await cleanup(source, target, { unfence: true, bucardoUrl: ctl.conn() });
    } finally {
      await load.stop();
    }
  });

  it('--bucardo-parallel-copy with --exclude-schema: pgrelocate copies the data after the triggers are in, Bucardo carries the changes of what the filter keeps; verified', async function () {
    const source = await freshDatabase(await server(14), 'bsrc3');
    const sample = await loadSample(source, { sizeBytes: 3e6 });
    const target = await freshDatabase(await server(17), 'btgt3');
    const load = new WriteLoad(source, { rate: 100, workers: 2, user: { name: APP_ROLE, password: sample.appPassword } });
    await load.start();
    try {
      // With a filter: billing stays out of Bucardo's relgroup (no trigger there) and off the target.
      const filter = { includeSchema: [], excludeSchema: ['billing'], includeTable: [], excludeTable: [] };
      const s = await bucardoSync(source, target, ctl.conn(), { jobs: 2, bucardoParallelCopy: true, splitBytes: 1e6, filter });
      const triggered = await sql<{ t: string }>(
        source,
        `SELECT DISTINCT n.nspname || '.' || c.relname AS t FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace WHERE g.tgname LIKE 'bucardo%'`,
      );
      assert.ok(triggered.some((x) => x.t.startsWith('app.')) && !triggered.some((x) => /billing/i.test(x.t)), JSON.stringify(triggered));
      assert.deepEqual(await sql(target, `SELECT to_regclass('billing."InvoiceDocuments"')::text AS t`), [{ t: null }]);
      const names = s.steps.map((x) => x.name);
      assert.ok(names.includes('copy') && !names.includes('onetimecopy'), names.join(','));
      assert.ok(names.indexOf('sync-setup') < names.indexOf('copy'), 'triggers before the snapshot');
      await new Promise((r) => setTimeout(r, 1500));
      const c = await cutover(source, target, { jobs: 2, verify: 'checksum' });
      load.switchTo(target);
      await new Promise((r) => setTimeout(r, 300));
      await load.stop();
      assert.equal(c.verification!.ok, true, c.verification!.mismatches.join('\n'));
      const ledger = await load.ledger.check(target);
      assert.equal(ledger.ok, true, JSON.stringify(ledger).slice(0, 400));
      assert.deepEqual(await traces(source), []);
      await cleanup(source, target, { unfence: true, bucardoUrl: ctl.conn() });
    } finally {
      await load.stop();
    }
  });

  it('cutover --rollback, then rollback under write load: the way back is native logical replication, started once Bucardo is gone; every write made on the new server is on the old one', async function () {
    const source = await freshDatabase(await server(14), 'brbs');
    const sample = await loadSample(source, { sizeBytes: 3e6 });
    const target = await freshDatabase(await server(17), 'brbt');
    const load = new WriteLoad(source, { rate: 100, workers: 2, user: { name: APP_ROLE, password: sample.appPassword } });
    await load.start();
    try {
      await bucardoSync(source, target, ctl.conn(), { jobs: 2 });
      await cutOverAndBack(source, target, load, sample.appPassword);
    } finally {
      await load.stop();
    }
    await cleanup(source, target, { bucardoUrl: ctl.conn() });
    assert.deepEqual(await backLeftovers(source, target), []);
  });

  it('a schema change during the sync is named by the cutover, which refuses before its fence; cleanup after the abandoned sync stops Bucardo and removes its schema, triggers and control database', async function () {
    const source = await freshDatabase(await server(14), 'bsrc2');
    await loadSample(source, { sizeBytes: 1e6 });
    const target = await freshDatabase(await server(17), 'btgt2');
    await bucardoSync(source, target, ctl.conn(), { jobs: 2 });
    assert.notDeepEqual(await traces(source), []);
    // status reads Bucardo's own view of the sync (there is no slot to measure).
    const st = await status(source, target);
    assert.equal(st.phase, 'streaming');
    assert.match(st.bucardo?.['Current state'] ?? '', /good/i, JSON.stringify(st.bucardo));
    // A schema change on the source is never missed: the cutover refuses before the fence, naming it; sync says what it left.
    await sql(source, `CREATE TABLE app.coupons (id int PRIMARY KEY, code text); ALTER TABLE app.products ADD COLUMN note text`);
    await assert.rejects(cutover(source, target, { verify: 'count' }), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'schema-changed', e.message);
      assert.match(e.message, /new table app\.coupons/);
      assert.match(e.message, /app\.products: new column note text/);
      return true;
    });
    const again = await bucardoSync(source, target, ctl.conn(), { jobs: 2 });
    assert.equal(again.alreadyStreaming, true);
    assert.ok(
      again.schema.pending.some((p) => /app\.coupons/.test(p)),
      JSON.stringify(again.schema),
    );
    const removed = await cleanup(source, target, { bucardoUrl: ctl.conn() });
    assert.ok(
      removed.some((r) => /Bucardo daemon stopped/.test(r)),
      removed.join('\n'),
    );
    assert.deepEqual(await traces(source), []);
    assert.deepEqual(await traces(target), []);
    assert.deepEqual(await sql(ctl.conn(), `SELECT 1 FROM pg_roles WHERE rolname = 'bucardo'`), []);
  });

  it('refuses a control server without superuser rights, naming the fix, before touching the source', async function () {
    await sql(
      ctl.conn(),
      `DO $$ BEGIN CREATE ROLE bucardo_plain LOGIN PASSWORD 'plainpw'; EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
    );
    const control = new BucardoControl({ ...ctl.conn(), user: 'bucardo_plain', password: 'plainpw' }, '/tmp/pgrelocate-bucardo-refusal');
    await assert.rejects(
      control.ensureInstalled(),
      (e: Error & { fix?: string }) => /superuser/.test(e.message) && /--bucardo-url/.test(e.fix ?? ''),
    );
  });
});
