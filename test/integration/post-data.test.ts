/**
 * The post-data section on real servers: everything `pg_dump` puts there
 * (row security, NOT VALID checks on tables and domains, a clustered primary
 * key, a replica identity index, disabled triggers, rules, extended
 * statistics, foreign keys of every kind, partitioned indexes, comments, an
 * event trigger, publications) and what comes before it (types, identity and
 * owned sequences, generated columns, storage and statistics settings,
 * inheritance, unlogged tables, views, functions, grants, default
 * privileges) must be on the target after pgrelocate's pipelined copy, exactly
 * as on the source: the two schema dumps are compared line by line. Foreign
 * keys between copied tables are added while the copy is still running, and
 * a sync killed after adding one resumes (the key is dropped and added again
 * after the new copy); pgrelocate's own publication is never copied.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { execa } from 'execa';
import { libpqUrl } from '../../engine/tool-exec';
import { toUrl, type ConnInfo } from '../../engine/conn';
import { ExitCode } from '../../engine/errors';
import { copyOnce } from '../../engine/copy/once';
import type { RunEvent } from '../../engine/runner';
import { findClientTools } from '../../engine/tools';
import { verify } from '../../engine/verify';
import { pgrelocate } from '../helpers/cli';
import { freshDatabase, hasServer, newestPgDump, server, sql } from '../helpers/servers';

/**
 * `shop.log` loads slowly into the target on purpose: its CHECK sleeps 2 ms a
 * row in sessions named pgrelocate-copy (pgrelocate's copy sessions), and only
 * there. The other tables and their foreign keys are done long before it.
 */
const SCHEMA = `
CREATE SCHEMA shop;
CREATE FUNCTION shop.slow_in_copy(bigint) RETURNS boolean LANGUAGE sql AS
  $$ SELECT CASE WHEN current_setting('application_name') = 'pgrelocate-copy' THEN (SELECT true FROM pg_sleep(0.002)) ELSE true END $$;
CREATE DOMAIN shop.qty AS int;
CREATE TABLE shop.customers (
  id bigint PRIMARY KEY, email text NOT NULL, tenant int NOT NULL,
  CONSTRAINT customers_email_key UNIQUE (email));
CREATE UNIQUE INDEX customers_tenant_email ON shop.customers (tenant, email);
ALTER TABLE shop.customers REPLICA IDENTITY USING INDEX customers_tenant_email;
ALTER TABLE shop.customers CLUSTER ON customers_pkey;
CREATE TABLE shop.orders (
  id bigint PRIMARY KEY, customer_id bigint, email text, tenant int, parent_id bigint, total numeric, qty shop.qty);
CREATE TABLE shop.events (at date NOT NULL, customer_id bigint REFERENCES shop.customers (id), what text) PARTITION BY RANGE (at);
CREATE TABLE shop.events_2025 PARTITION OF shop.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE shop.events_other PARTITION OF shop.events DEFAULT;
CREATE TABLE shop.log (id bigint PRIMARY KEY CHECK (shop.slow_in_copy(id)), body text);
INSERT INTO shop.customers SELECT i, 'c' || i || '@example.com', i % 7 FROM generate_series(1, 2000) i;
INSERT INTO shop.orders
  SELECT i, 1 + i % 2000, 'c' || (1 + i % 2000) || '@example.com', (1 + i % 2000) % 7, NULLIF(i / 2, 0), i % 500, 1 + i % 5
    FROM generate_series(1, 8000) i;
-- A row the NOT VALID constraints below were never checked against.
INSERT INTO shop.orders VALUES (8001, NULL, NULL, NULL, NULL, -5, 0);
INSERT INTO shop.events SELECT DATE '2024-06-01' + i % 700, 1 + i % 2000, 'e' || i FROM generate_series(1, 3000) i;
INSERT INTO shop.log SELECT i, repeat('x', 50) FROM generate_series(1, 1500) i;
ALTER DOMAIN shop.qty ADD CONSTRAINT qty_positive CHECK (VALUE > 0) NOT VALID;
ALTER TABLE shop.orders ADD CONSTRAINT orders_total_positive CHECK (total >= 0) NOT VALID;
ALTER TABLE shop.orders ADD CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES shop.customers (id) ON DELETE CASCADE;
ALTER TABLE shop.orders ADD CONSTRAINT orders_email_fk FOREIGN KEY (email) REFERENCES shop.customers (email) MATCH FULL DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE shop.orders ADD CONSTRAINT orders_tenant_email_fk FOREIGN KEY (tenant, email) REFERENCES shop.customers (tenant, email);
ALTER TABLE shop.orders ADD CONSTRAINT orders_parent_fk FOREIGN KEY (parent_id) REFERENCES shop.orders (id);
ALTER TABLE shop.orders ADD CONSTRAINT orders_unchecked_fk FOREIGN KEY (customer_id) REFERENCES shop.customers (id) NOT VALID;
COMMENT ON CONSTRAINT orders_customer_fk ON shop.orders IS 'cascades';
CREATE INDEX orders_customer_idx ON shop.orders (customer_id) INCLUDE (total);
CREATE INDEX orders_big ON shop.orders (total) WHERE total > 100;
CREATE INDEX orders_email_hash ON shop.orders USING hash (email);
CREATE INDEX orders_lower_email ON shop.orders (lower(email));
COMMENT ON INDEX shop.orders_customer_idx IS 'by customer';
CREATE STATISTICS shop.orders_stats (dependencies) ON customer_id, total FROM shop.orders;
CREATE FUNCTION shop.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER orders_touch BEFORE UPDATE ON shop.orders FOR EACH ROW EXECUTE FUNCTION shop.touch();
CREATE TRIGGER orders_audit AFTER INSERT ON shop.orders FOR EACH ROW EXECUTE FUNCTION shop.touch();
ALTER TABLE shop.orders DISABLE TRIGGER orders_audit;
COMMENT ON TRIGGER orders_touch ON shop.orders IS 'touches';
CREATE RULE orders_keep_big AS ON DELETE TO shop.orders WHERE old.total > 1000000 DO INSTEAD NOTHING;
CREATE INDEX events_at ON shop.events (at);
ALTER TABLE shop.customers ENABLE ROW LEVEL SECURITY;
ALTER TABLE shop.customers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON shop.customers USING (tenant = current_setting('app.tenant', true)::int);
COMMENT ON POLICY tenant_rows ON shop.customers IS 'one tenant per session';
CREATE MATERIALIZED VIEW shop.order_totals AS SELECT customer_id, sum(total) AS total FROM shop.orders GROUP BY 1;
CREATE UNIQUE INDEX order_totals_customer ON shop.order_totals (customer_id);
-- Pre-data and objects outside any table's post-data, in the same comparison.
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TYPE shop.status AS ENUM ('new', 'paid', 'shipped');
CREATE TYPE shop.money_pair AS (amount numeric, currency char(3));
CREATE SEQUENCE shop.invoice_no START 1000 INCREMENT 10;
CREATE TABLE shop.invoices (
  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  no bigint NOT NULL DEFAULT nextval('shop.invoice_no'),
  status shop.status NOT NULL DEFAULT 'new',
  amount shop.money_pair,
  email citext,
  cents numeric GENERATED ALWAYS AS (((amount).amount * 100)) STORED
) WITH (fillfactor = 90, autovacuum_vacuum_scale_factor = 0.01);
ALTER SEQUENCE shop.invoice_no OWNED BY shop.invoices.no;
ALTER TABLE shop.invoices ALTER COLUMN status SET STATISTICS 500;
COMMENT ON COLUMN shop.invoices.cents IS 'derived';
INSERT INTO shop.invoices (status, amount, email) SELECT 'paid', ROW(i::numeric, 'EUR')::shop.money_pair, 'A' || i || '@x' FROM generate_series(1, 300) i;
CREATE TABLE shop.base (id int, note text);
CREATE TABLE shop.base_child (extra int) INHERITS (shop.base);
INSERT INTO shop.base_child VALUES (1, 'inherited', 2);
CREATE UNLOGGED TABLE shop.cache (k text PRIMARY KEY, v text);
INSERT INTO shop.cache VALUES ('a', 'b');
CREATE VIEW shop.paid_invoices WITH (security_barrier) AS SELECT id, no FROM shop.invoices WHERE status = 'paid';
CREATE FUNCTION shop.invoice_count() RETURNS bigint LANGUAGE sql STABLE SECURITY DEFINER SET search_path = shop, pg_temp
  AS $$ SELECT count(*) FROM shop.invoices $$;
CREATE TEXT SEARCH CONFIGURATION shop.english_plain (COPY = pg_catalog.english);
CREATE FUNCTION shop.on_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;
CREATE EVENT TRIGGER pgrelocate_test_ddl ON ddl_command_end EXECUTE FUNCTION shop.on_ddl();
ALTER EVENT TRIGGER pgrelocate_test_ddl DISABLE;
GRANT USAGE ON SCHEMA shop TO pgrelocate_test_reader;
GRANT SELECT ON shop.invoices TO pgrelocate_test_reader;
GRANT SELECT (id, email) ON shop.customers TO pgrelocate_test_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA shop GRANT SELECT ON TABLES TO pgrelocate_test_reader;
CREATE POLICY reader_rows ON shop.customers FOR SELECT TO pgrelocate_test_reader USING (tenant = 1);
-- An application's change-data-capture publications come along (pgrelocate's own does not).
CREATE PUBLICATION cdc_orders FOR TABLE shop.orders, shop.customers WITH (publish = 'insert, update');
CREATE PUBLICATION cdc_all FOR ALL TABLES;
`;

/** A role both servers must have (roles are global: the test copies without them). */
const ROLE = `DO $$ BEGIN CREATE ROLE pgrelocate_test_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$`;

/** The schema as pg_dump prints it, without comment lines (versions, dates) or \restrict keys (random); one client for both sides. */
async function schemaDump(c: ConnInfo): Promise<string[]> {
  const tools = (await findClientTools())[0]!;
  const r = await execa(tools.pgDump, ['--schema-only', '--no-subscriptions', '--exclude-schema=pgrelocate', '-d', libpqUrl(c)], {
    env: { PGPASSWORD: c.password ?? '' },
  });
  return r.stdout.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('--') && !/^\\(un)?restrict /.test(l));
}

/** The schema for a source major: generated columns exist from 12 on. */
function schemaFor(major: number): string {
  return major >= 12
    ? SCHEMA
    : SCHEMA.replace(/,\n {2}cents numeric GENERATED ALWAYS AS [^\n]*\n/, '\n').replace(
        /COMMENT ON COLUMN shop\.invoices\.cents[^\n]*\n/,
        '',
      );
}

async function setup(from: number, to: number): Promise<{ source: ConnInfo; target: ConnInfo }> {
  const source = await freshDatabase(await server(from), 'pdsrc');
  const target = await freshDatabase(await server(to), 'pdtgt');
  for (const c of [source, target]) await sql(c, ROLE);
  await sql(source, schemaFor(from));
  return { source, target };
}

describe('post-data: every object of the section, foreign keys during the copy', function () {
  // pg_dump on this machine must read both servers (it refuses newer ones) for the comparison.
  const [from, to] = [12, 14];
  before(async function () {
    if (!hasServer(from) || !hasServer(to) || (await newestPgDump()) < to) this.skip();
  });

  it(`${from} → ${to}: the same schema dump on both sides, foreign keys added before the copy ends, data verified`, async function () {
    const { source, target } = await setup(from, to);
    // The source database also subscribes elsewhere (disabled, never connected): check names it, nothing copies it.
    await sql(
      source,
      `CREATE SUBSCRIPTION from_billing CONNECTION 'host=127.0.0.1 port=1 dbname=billing' PUBLICATION billing WITH (connect = false)`,
    );
    const events: RunEvent[] = [];
    const report = await copyOnce(source, target, { jobs: 2, verify: 'checksum', skipGlobals: true }, (e) => void events.push(e));
    assert.ok(
      report.findings.some((f) => f.code === 'source-subscriptions' && /from_billing/.test(f.message)),
      JSON.stringify(report.findings),
    );
    const subs = await sql(target, `SELECT 1 FROM pg_subscription WHERE subname = 'from_billing'`);
    assert.equal(subs.length, 0);
    const v = await verify(source, target, { mode: 'checksum', jobs: 2 });
    assert.equal(v.ok, true, v.mismatches.join('\n'));
    assert.deepEqual(await schemaDump(target), await schemaDump(source));
    const at = (pred: (e: RunEvent) => boolean): number => events.findIndex(pred);
    const copyDone = at((e) => e.type === 'step' && e.name === 'copy' && e.status === 'done');
    for (const fk of ['orders_customer_fk', 'orders_email_fk', 'orders_tenant_email_fk', 'orders_parent_fk', 'orders_unchecked_fk']) {
      const added = at((e) => e.type === 'log' && e.message.startsWith(`foreign key ${fk} `));
      assert.ok(added >= 0 && added < copyDone, `${fk} added while shop.log was still copying (event ${added}, copy done at ${copyDone})`);
    }
    // The key from a partitioned table is the rest's: after the copy.
    const [part] = await sql<{ n: string }>(
      target,
      `SELECT count(*)::text AS n FROM pg_constraint WHERE contype = 'f' AND conrelid = 'shop.events'::regclass`,
    );
    assert.equal(part!.n, '1');
    const [rls] = await sql<{ on: boolean; forced: boolean; replident: string }>(
      target,
      `SELECT relrowsecurity AS on, relforcerowsecurity AS forced, relreplident AS replident FROM pg_class WHERE oid = 'shop.customers'::regclass`,
    );
    assert.deepEqual(rls, { on: true, forced: true, replident: 'i' }, 'row security on (and forced), replica identity index');
  });

  it('11 → 14: the same schema dump on both sides after a copy from a PostgreSQL 11 source, data verified', async function () {
    if (!hasServer(11)) this.skip();
    const { source, target } = await setup(11, to);
    await copyOnce(source, target, { jobs: 2, verify: 'checksum', skipGlobals: true });
    // What pg_dump prints differently for the same objects on 11 and 12+ (checked by diffing the two dumps).
    const same = (lines: string[]): string[] =>
      lines
        .filter((l) => l !== 'SET default_table_access_method = heap;')
        .map((l) => l.replace(' EXECUTE PROCEDURE ', ' EXECUTE FUNCTION '));
    assert.deepEqual(same(await schemaDump(target)), same(await schemaDump(source)));
    const v = await verify(source, target, { mode: 'checksum', jobs: 2 });
    assert.equal(v.ok, true, v.mismatches.join('\n'));
  });

  /** A `sync` killed when its output matches `at`, then run again; then cut over, verified, cleaned up, compared. */
  async function killAndResume(at: RegExp, checkKilled: (target: ConnInfo) => Promise<void>): Promise<void> {
    const { source, target } = await setup(from, to);
    const env = { PGRELOCATE_SOURCE_URL: toUrl(source, { password: true }), PGRELOCATE_TARGET_URL: toUrl(target, { password: true }) };
    const cli = path.resolve(__dirname, '..', '..', 'scripts', 'cli.js');
    // --verbose: the per-object lines (a foreign key added) are where it is killed.
    const child = execa(process.execPath, [cli, 'sync', '--jobs', '2', '--skip-globals', '--replica-identity-full', '--verbose'], {
      env,
      reject: false,
      stdin: 'ignore',
    });
    let killed = false;
    let seen = '';
    await new Promise<void>((resolve) => {
      child.stderr?.on('data', (d: Buffer) => {
        seen += d.toString();
        if (!killed && at.test(seen)) {
          killed = true;
          child.kill('SIGKILL');
        }
      });
      void child.then(() => resolve());
    });
    assert.ok(killed, `killed at ${at}; it printed:\n${seen}`);
    await checkKilled(target);
    const st = await pgrelocate(['status', '--json'], env);
    assert.equal((JSON.parse(st.stdout) as { phase: string }).phase, 'copy');
    const resumed = await pgrelocate(['sync', '--jobs', '2', '--skip-globals', '--replica-identity-full', '--json'], env);
    assert.equal(resumed.exitCode, ExitCode.ok, resumed.stderr);
    assert.equal((JSON.parse(resumed.stdout) as { resumed: boolean }).resumed, true);
    const c = await pgrelocate(['cutover', '--verify', 'checksum', '--json'], env);
    assert.equal(c.exitCode, ExitCode.ok, c.stderr);
    const v = await verify(source, target, { mode: 'checksum', jobs: 2 });
    assert.equal(v.ok, true, v.mismatches.join('\n'));
    // --unfence: the fence's triggers on the source are pgrelocate's, and this compares the user's schema.
    const clean = await pgrelocate(['cleanup', '--unfence'], env);
    assert.equal(clean.exitCode, ExitCode.ok, clean.stderr);
    // After cleanup: the partitions' REPLICA IDENTITY FULL on the source is undone.
    assert.deepEqual(await schemaDump(target), await schemaDump(source));
  }

  it('a sync killed after its first foreign key resumes: the key goes, the copy starts over, the key comes back', async function () {
    // orders is copied before customers (largest first): with the old key in place its rows would be refused.
    await killAndResume(/foreign key orders_customer_fk/, async (target) => {
      const [fk] = await sql<{ n: string }>(target, `SELECT count(*)::text AS n FROM pg_constraint WHERE conname = 'orders_customer_fk'`);
      assert.equal(fk!.n, '1', 'the killed attempt had added the key');
    });
  });

  it('a sync killed once the copy is done resumes (a resumed sync copies again): an index built but not yet attached as its key gets attached', async function () {
    await killAndResume(/✓ copy/, async (target) => {
      // The window between building a primary key's index and attaching it as the key, made certain.
      await sql(
        target,
        `ALTER TABLE shop.log DROP CONSTRAINT IF EXISTS log_pkey;
         CREATE UNIQUE INDEX IF NOT EXISTS log_pkey ON shop.log (id);`,
      );
    });
  });
});
