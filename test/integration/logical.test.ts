/**
 * The logical strategy on real servers, under write load: every committed
 * write reaches the target, verification passes, and no replication artefact
 * is left behind (checked in the catalogs).
 */
import assert from 'node:assert/strict';
import { execa } from 'execa';
import path from 'node:path';
import { openClient, toUrl, type ConnInfo } from '../../engine/conn';
import { startServer, type LocalServer } from '../../engine/local/cluster';
import { lastApplyError } from '../../engine/streaming/subscription';
import { ExitCode, PgrelocateError } from '../../engine/errors';
import { cleanup, cutover } from '../../engine/strategies';
import { sync } from '../../engine/strategies/logical';
import { verify } from '../../engine/verify';
import { APP_ROLE, loadSample } from '../../scripts/sample-db';
import { WriteLoad } from '../../scripts/write-load';
import { pgrelocate } from '../helpers/cli';
import { fingerprint, freshDatabase, hasServer, newestPgDump, server, sql } from '../helpers/servers';

/** pgrelocate's artefacts left in the catalogs of both sides. */
async function artefacts(source: ConnInfo, target: ConnInfo): Promise<string[]> {
  const slots = await sql<{ n: string }>(
    source,
    `SELECT slot_name AS n FROM pg_replication_slots WHERE slot_name LIKE 'pgrelocate%' AND database = current_database()`,
  );
  const pubs = await sql<{ n: string }>(source, `SELECT pubname AS n FROM pg_publication WHERE pubname LIKE 'pgrelocate%'`);
  const subs = await sql<{ n: string }>(
    target,
    `SELECT subname AS n FROM pg_subscription WHERE subname LIKE 'pgrelocate%' AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
  );
  const full = await sql<{ n: string }>(
    source,
    `SELECT relname AS n FROM pg_class WHERE relreplident = 'f' AND relkind = 'r' AND relnamespace::regnamespace::text NOT IN ('pg_catalog') ORDER BY 1`,
  );
  return [
    ...slots.map((r) => `slot ${r.n}`),
    ...pubs.map((r) => `publication ${r.n}`),
    ...subs.map((r) => `subscription ${r.n}`),
    ...full.map((r) => `replica identity full ${r.n}`),
  ];
}

/** Tables and partitioned tables of the target that hold rows but have no planner statistics. */
async function withoutStatistics(target: ConnInfo): Promise<string[]> {
  const rels = await sql<{ q: string }>(
    target,
    `SELECT c.oid::regclass::text AS q FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgrelocate') AND n.nspname NOT LIKE 'pg\\_%'
        AND NOT EXISTS (SELECT 1 FROM pg_statistic s WHERE s.starelid = c.oid)`,
  );
  const out: string[] = [];
  for (const r of rels) {
    const [n] = await sql<{ n: string }>(target, `SELECT count(*)::text AS n FROM ${r.q}`);
    if (n!.n !== '0') out.push(`${r.q} (${n!.n} rows)`);
  }
  return out;
}

async function canRun(from: number, to: number): Promise<boolean> {
  return hasServer(from) && hasServer(to) && (await newestPgDump()) >= from;
}

/** The application role's connection to a database of the sample. */
const app = (c: ConnInfo, password: string): ConnInfo => ({ ...c, user: APP_ROLE, password });

async function setup(from: number, to: number, size = 6e6) {
  const source = await freshDatabase(await server(from), 'lsrc');
  const sample = await loadSample(source, { sizeBytes: size });
  const target = await freshDatabase(await server(to), 'ltgt');
  return { source, target, sample };
}

describe('logical strategy under write load', function () {
  for (const [from, to] of [
    [12, 17],
    [14, 16],
    [15, 17],
    [16, 17],
  ] as const) {
    it(`${from} → ${to}: sync, stream, cut over; every committed write on the target; nothing left behind`, async function () {
      if (!(await canRun(from, to))) this.skip();
      const { source, target, sample } = await setup(from, to);
      const load = new WriteLoad(source, { rate: 150, workers: 3, user: { name: APP_ROLE, password: sample.appPassword } });
      await load.start();
      try {
        const s = await sync(source, target, { jobs: 2, replicaIdentityFull: true, splitBytes: 1e6 });
        assert.equal(s.alreadyStreaming, false);
        assert.ok(s.copy!.parts > s.copy!.tables, 'large tables were split into ranges');
        assert.ok(s.copy!.textTables.includes('"app"."users"'), 'citext table copied in text format');
        await new Promise((r) => setTimeout(r, 1500));
        // Streaming carries writes made after the snapshot.
        const again = await sync(source, target, { jobs: 2, replicaIdentityFull: true });
        assert.equal(again.alreadyStreaming, true);
        const c = await cutover(source, target, { jobs: 2, verify: 'checksum' });
        load.switchTo(target);
        await new Promise((r) => setTimeout(r, 500));
        const summary = await load.stop();
        assert.ok(c.blackoutSeconds < 5, `blackout ${c.blackoutSeconds}s`);
        assert.ok(
          c.steps.findIndex((x) => x.name === 'analyze') < c.steps.findIndex((x) => x.name === 'fence'),
          'statistics before the fence',
        );
        assert.deepEqual(await withoutStatistics(target), [], 'the planner has statistics for every table, partitioned parents too');
        assert.equal(c.verification!.ok, true, c.verification!.mismatches.join('\n'));
        assert.ok(summary.committed > 100);
        const ledger = await load.ledger.check(target);
        assert.equal(ledger.ok, true, JSON.stringify(ledger).slice(0, 400));
        assert.ok(load.writeGap() !== null, 'the application wrote on the source, then on the target');
        // The source is fenced: a new application session cannot write.
        await assert.rejects(
          sql(
            { ...source, user: APP_ROLE, password: sample.appPassword },
            `INSERT INTO public.schema_migrations (version) VALUES ('late')`,
          ),
          /read-only transaction/,
        );
        // Until cleanup, the key-less tables (and the key-less partitions) keep REPLICA IDENTITY FULL.
        assert.deepEqual(await artefacts(source, target), [
          'replica identity full page_views_2025h1',
          'replica identity full page_views_2025h2',
          'replica identity full page_views_default',
          'replica identity full schema_migrations',
        ]);
        const removed = await cleanup(source, target);
        assert.ok(removed.some((r) => /REPLICA IDENTITY FULL/.test(r)));
        assert.deepEqual(await artefacts(source, target), []);
        // Identity/serial sequences continue on the target past the source's values.
        const [seq] = await sql<{ t: string; s: string }>(
          target,
          `SELECT (SELECT last_value::text FROM audit.events_id_seq) AS t, '' AS s`,
        );
        const [sseq] = await sql<{ v: string }>(source, `SELECT last_value::text AS v FROM audit.events_id_seq`);
        assert.ok(BigInt(seq!.t) >= BigInt(sseq!.v));
      } finally {
        await load.stop();
      }
    });
  }

  it('copy: a one-time copy under one snapshot, with sequences and large objects, verified, leaving no slot', async function () {
    if (!(await canRun(14, 17))) this.skip();
    const { source, target } = await setup(14, 17, 3e6);
    const env = { PGRELOCATE_SOURCE_URL: toUrl(source, { password: true }), PGRELOCATE_TARGET_URL: toUrl(target, { password: true }) };
    const r = await pgrelocate(['copy', '--jobs', '2', '--verify', 'checksum', '--json'], env);
    assert.equal(r.exitCode, ExitCode.ok, r.stderr);
    const report = JSON.parse(r.stdout) as { steps: { name: string; detail: { analyzed?: number } }[]; copy: { rows: number } };
    assert.deepEqual(
      report.steps.map((s) => s.name),
      ['globals', 'schema-pre-data', 'copy', 'schema-post-data', 'finish', 'verify'],
    );
    assert.ok(report.copy.rows > 1000);
    assert.ok((report.steps.find((s) => s.name === 'finish')?.detail.analyzed ?? 0) > 5, JSON.stringify(report.steps));
    assert.deepEqual(await withoutStatistics(target), [], 'the planner has statistics for every table, partitioned parents too');
    const [seq] = await sql<{ t: string }>(target, `SELECT last_value::text AS t FROM app.orders_id_seq`);
    const [sseq] = await sql<{ s: string }>(source, `SELECT last_value::text AS s FROM app.orders_id_seq`);
    assert.equal(seq!.t, sseq!.s);
    assert.deepEqual(await artefacts(source, target), []);
  });

  it('refuses tables without a key unless asked, and with --replica-identity-full replicates their updates and deletes', async function () {
    if (!(await canRun(12, 17))) this.skip();
    const { source, target } = await setup(12, 17, 3e6);
    const before = [await fingerprint(source), await fingerprint(target)];
    await assert.rejects(
      sync(source, target, { jobs: 2 }),
      (e: PgrelocateError) => e.code === 'check-failed' && /schema_migrations/.test(e.message) && /--replica-identity-full/.test(e.message),
    );
    assert.deepEqual([await fingerprint(source), await fingerprint(target)], before, 'refusal changed nothing');
    await sync(source, target, { jobs: 2, replicaIdentityFull: true });
    await sql(
      source,
      `UPDATE public.schema_migrations SET applied_at = '2001-01-01' WHERE version IN (SELECT version FROM public.schema_migrations ORDER BY version LIMIT 5)`,
    );
    await sql(source, `DELETE FROM public.schema_migrations WHERE version = (SELECT max(version) FROM public.schema_migrations)`);
    await sql(source, `INSERT INTO public.schema_migrations (version) VALUES ('20991231000000')`);
    const c = await cutover(source, target, { verify: 'checksum' });
    assert.equal(c.verification!.ok, true, c.verification!.mismatches.join('\n'));
    const [t] = await sql<{ n: string; old: string }>(
      target,
      `SELECT count(*)::text AS n, count(*) FILTER (WHERE applied_at = '2001-01-01')::text AS old FROM public.schema_migrations`,
    );
    assert.deepEqual(t, { n: '60', old: '5' });
    await cleanup(source, target);
    assert.deepEqual(await artefacts(source, target), []);
  });

  it('a subscription whose apply keeps failing stops the cutover before the fence, whatever the lag; fixed, the cutover goes through', async function () {
    if (!(await canRun(12, 17))) this.skip();
    // A target whose log goes through the collector, which pgrelocate may read as a superuser.
    const logged = await startServer({ major: 17, name: 'logged', settings: { logging_collector: 'on' } });
    try {
      await applyFailing(logged);
    } finally {
      await logged.stop();
    }
  });

  async function applyFailing(logged: LocalServer): Promise<void> {
    const source = await freshDatabase(await server(12), 'lsrc');
    await loadSample(source, { sizeBytes: 3e6 });
    const target = await freshDatabase(logged, 'ltgt');
    await sync(source, target, { jobs: 2, replicaIdentityFull: true });
    // A row the target already has: every apply of the source's insert fails (duplicate key) and the worker restarts.
    await sql(target, `INSERT INTO app.accounts (id, name) VALUES (990001, 'made on the target')`);
    await sql(source, `INSERT INTO app.accounts (id, name) VALUES (990001, 'made on the source')`);
    await new Promise((r) => setTimeout(r, 1500));
    await assert.rejects(cutover(source, target, { verify: 'count' }), (e: PgrelocateError) => {
      assert.equal(e.code, 'apply-failing', e.message);
      assert.match(e.message, /not applying changes: subscription pgrelocate_\w+: .*; nothing was fenced/);
      // The apply error itself, from the target's log: what it is, the row, and the table being applied to.
      assert.match(
        e.message,
        /The target's log: duplicate key value violates unique constraint "accounts_pkey"; Key \(id\)=\(990001\) already exists\.; processing remote data .*"app\.accounts"/,
      );
      assert.match(e.fix ?? '', /Fix what the error names on the target/);
      return true;
    });
    // A role that may not read the log gets the way to it instead.
    await sql(target, `CREATE ROLE plain_reader LOGIN PASSWORD 'plain'`);
    const plain = await openClient({ ...target, user: 'plain_reader', password: 'plain' });
    try {
      assert.equal(await lastApplyError(plain).catch(() => null), null);
    } finally {
      await plain.end();
    }
    // Nothing fenced: no read-only setting on the source, and the application still writes.
    assert.deepEqual(
      await sql(
        source,
        `SELECT e FROM pg_db_role_setting s, unnest(s.setconfig) e
          WHERE s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database())) AND e LIKE 'default_transaction_read_only%'`,
      ),
      [],
    );
    await sql(source, `INSERT INTO app.accounts (id, name) VALUES (990002, 'written after the refusal')`);
    // The operator removes the conflicting row: the worker applies on its next start and the cutover succeeds.
    await sql(target, `DELETE FROM app.accounts WHERE id = 990001`);
    const c = await cutover(source, target, { verify: 'checksum' });
    assert.equal(c.verification!.ok, true, c.verification!.mismatches.join('\n'));
    assert.deepEqual(
      (await sql<{ name: string }>(target, `SELECT name FROM app.accounts WHERE id IN (990001, 990002) ORDER BY id`)).map((r) => r.name),
      ['made on the source', 'written after the refusal'],
    );
    await cleanup(source, target);
    assert.deepEqual(await artefacts(source, target), []);
  }

  it('schema changes during the sync, under write load: status, verify and cutover name each (a new table with rows, a new column written to, a new index); made on the target as the fix says, the cutover goes through with every row', async function () {
    if (!(await canRun(14, 17))) this.skip();
    const { source, target, sample } = await setup(14, 17, 2e6);
    const env = { PGRELOCATE_SOURCE_URL: toUrl(source, { password: true }), PGRELOCATE_TARGET_URL: toUrl(target, { password: true }) };
    const load = new WriteLoad(source, { rate: 100, workers: 2, user: { name: APP_ROLE, password: sample.appPassword } });
    await load.start();
    try {
      await sync(source, target, { jobs: 2, replicaIdentityFull: true });
      await sql(
        source,
        `CREATE TABLE app.coupons (id int PRIMARY KEY, code text NOT NULL);
         INSERT INTO app.coupons SELECT g, 'C' || g FROM generate_series(1, 500) g;
         ALTER TABLE app.accounts ADD COLUMN nickname text;
         INSERT INTO app.accounts (name, nickname) VALUES ('new', 'nick');
         CREATE INDEX accounts_nickname_idx ON app.accounts (nickname)`,
      );
      const expected = [
        /new table app\.coupons: created on the source after the copy, not replicated/,
        /app\.accounts: new column nickname text/,
        /app\.accounts: new index accounts_nickname_idx \(CREATE INDEX accounts_nickname_idx ON app\.accounts USING btree \(nickname\)\)/,
      ];
      const st = JSON.parse((await pgrelocate(['status', '--json'], env)).stdout) as { schemaChanges: string[] };
      assert.equal(st.schemaChanges.length, 3, st.schemaChanges.join('\n'));
      for (const [k, rx] of expected.entries())
        assert.ok(
          st.schemaChanges.some((c) => rx.test(c)),
          `status names change ${k}: ${st.schemaChanges.join('; ')}`,
        );
      assert.match((await pgrelocate(['status'], env)).stdout, /SCHEMA CHANGED on the source/);
      const v = await pgrelocate(['verify', '--verify', 'count'], env);
      assert.equal(v.exitCode, ExitCode.migrationFailed, v.stderr);
      for (const rx of expected) assert.match(v.stderr, rx);
      let fix = '';
      await assert.rejects(cutover(source, target, { verify: 'count' }), (e: PgrelocateError) => {
        assert.equal(e.code, 'schema-changed', e.message);
        for (const rx of expected) assert.match(e.message, rx);
        fix = e.fix ?? '';
        return true;
      });
      await sql(app(source, sample.appPassword), `INSERT INTO app.accounts (name, nickname) VALUES ('written after the refusal', 'w')`);
      // The fix, as printed: the same DDL on the target, the new table into the publication, the subscription refreshed (copies its rows).
      const pub = /ALTER PUBLICATION (\S+) ADD TABLE/.exec(fix)?.[1];
      const sub = /ALTER SUBSCRIPTION (\S+) REFRESH PUBLICATION/.exec(fix)?.[1];
      assert.ok(pub && sub, fix);
      await sql(
        target,
        `CREATE TABLE app.coupons (id int PRIMARY KEY, code text NOT NULL);
         ALTER TABLE app.accounts ADD COLUMN nickname text;
         CREATE INDEX accounts_nickname_idx ON app.accounts (nickname)`,
      );
      await sql(source, `ALTER PUBLICATION ${pub} ADD TABLE app.coupons`);
      await sql(target, `ALTER SUBSCRIPTION ${sub} REFRESH PUBLICATION`);
      await sql(source, `INSERT INTO app.coupons VALUES (501, 'after the refresh')`);
      const after = JSON.parse((await pgrelocate(['status', '--json'], env)).stdout) as { schemaChanges: string[] };
      assert.deepEqual(after.schemaChanges, []);
      const c = await cutover(source, target, { verify: 'count' });
      assert.equal(c.verification!.ok, true, c.verification!.mismatches.join('\n'));
      assert.ok(
        c.verification!.tables.some((t) => /coupons/.test(t.table)),
        'the new table was verified',
      );
      load.switchTo(target);
      await new Promise((r) => setTimeout(r, 300));
      await load.stop();
      const ledger = await load.ledger.check(target);
      assert.equal(ledger.ok, true, JSON.stringify(ledger).slice(0, 400));
      const [n] = await sql<{ n: number }>(target, `SELECT count(*)::int AS n FROM app.coupons`);
      assert.equal(n!.n, 501, 'every row of the new table, the copied ones and the streamed one');
      const [row] = await sql<{ n: string }>(target, `SELECT nickname AS n FROM app.accounts WHERE name = 'written after the refusal'`);
      assert.equal(row!.n, 'w');
      await cleanup(source, target, { unfence: true });
    } finally {
      await load.stop();
    }
  });

  it('filters under write load: check names what a filter cuts; sync with --exclude-schema and --exclude-table leaves them off the target and out of the publication, ignores their schema changes, and the cutover fences only the moved tables', async function () {
    if (!(await canRun(14, 17))) this.skip();
    const { source, target, sample } = await setup(14, 17, 2e6);
    const env = { PGRELOCATE_SOURCE_URL: toUrl(source, { password: true }), PGRELOCATE_TARGET_URL: toUrl(target, { password: true }) };
    type Check = { ok: boolean; findings: { level: string; code: string; message: string }[] };
    const check = async (...args: string[]): Promise<Check & { exitCode: number }> => {
      const r = await pgrelocate(['check', '--json', '--replica-identity-full', ...args], env);
      return { ...(JSON.parse(r.stdout) as Check), exitCode: r.exitCode };
    };
    // A table others reference cannot be left out alone: the key on the kept table names both.
    const cut = await check('--exclude-table', 'app.products');
    assert.equal(cut.exitCode, ExitCode.checkFailed);
    assert.ok(
      cut.findings.some(
        (f) => f.level === 'error' && f.code === 'filter-foreign-key' && /"app"\."line_items".*"app"\."products"/.test(f.message),
      ),
      JSON.stringify(cut.findings),
    );
    const typo = await check('--include-schema', 'ap');
    assert.ok(
      typo.findings.some((f) => f.code === 'filter-matches-nothing' && f.level === 'error'),
      JSON.stringify(typo.findings),
    );
    const ok = await check('--exclude-schema', 'billing', '--exclude-table', 'app.attach*');
    assert.equal(ok.ok, true, JSON.stringify(ok.findings.filter((f) => f.level === 'error')));
    assert.ok(ok.findings.some((f) => f.code === 'filter' && /leaves out/.test(f.message)));
    // billing."InvoiceDocuments" references app.orders: left out, it only loses its own rows.
    assert.ok(ok.findings.some((f) => f.code === 'filter-foreign-key' && f.level === 'warning'));
    // app tables use the domain billing.amount: the schema comes along with its types, without its tables.
    assert.ok(
      ok.findings.some((f) => f.code === 'filter-schema-kept' && /billing\.amount/.test(f.message)),
      JSON.stringify(ok.findings),
    );

    const load = new WriteLoad(source, { rate: 100, workers: 2, user: { name: APP_ROLE, password: sample.appPassword } });
    await load.start();
    try {
      const s = await pgrelocate(
        ['sync', '--json', '--replica-identity-full', '--exclude-schema', 'billing', '--exclude-table', 'app.attach*'],
        env,
      );
      assert.equal(s.exitCode, ExitCode.ok, s.stderr);
      const published = await sql<{ t: string }>(
        source,
        `SELECT schemaname || '.' || tablename AS t FROM pg_publication_tables WHERE pubname LIKE 'pgrelocate%' ORDER BY 1`,
      );
      assert.ok(published.length > 5, JSON.stringify(published));
      assert.deepEqual(
        published.filter((p) => /^billing\.|attachments/.test(p.t)),
        [],
      );
      const [onTarget] = await sql<{ billing: string | null; attachments: string | null; view: string | null }>(
        target,
        `SELECT (SELECT string_agg(relname, ',') FROM pg_class WHERE relnamespace = 'billing'::regnamespace) AS billing, to_regclass('app.attachments')::text AS attachments,
                to_regclass('app.order_summaries')::text AS view`,
      );
      assert.deepEqual(onTarget, { billing: null, attachments: null, view: 'app.order_summaries' });
      // Changes to what the filter leaves out are no schema change of the run.
      await sql(source, `CREATE TABLE billing.later (id int PRIMARY KEY); ALTER TABLE app.attachments ADD COLUMN note text`);
      const st = JSON.parse((await pgrelocate(['status', '--json'], env)).stdout) as { schemaChanges: string[] };
      assert.deepEqual(st.schemaChanges, []);

      const c = await cutover(source, target, { verify: 'count' });
      assert.equal(c.verification!.ok, true, c.verification!.mismatches.join('\n'));
      assert.deepEqual(
        c.verification!.tables.filter((t) => /billing|attachments/.test(t.table)),
        [],
      );
      load.switchTo(target);
      await new Promise((r) => setTimeout(r, 300));
      await load.stop();
      const ledger = await load.ledger.check(target);
      assert.equal(ledger.ok, true, JSON.stringify(ledger).slice(0, 400));
      // Only the moved tables are fenced: what stays on the source is written as before.
      const appUser = app(source, sample.appPassword);
      await assert.rejects(
        sql(appUser, `INSERT INTO app.accounts (name) VALUES ('after the cutover')`),
        /moved by pgrelocate and is read-only/,
      );
      await sql(appUser, `INSERT INTO billing."InvoiceDocuments" ("OrderId", "Body") SELECT id, 'stays' FROM app.orders LIMIT 1`);
      await sql(source, `INSERT INTO billing.later VALUES (1)`);
      const [ro] = await sql<{ v: string }>(appUser, `SELECT current_setting('default_transaction_read_only') AS v`);
      assert.equal(ro!.v, 'off');
      await cleanup(source, target, { unfence: true });
      assert.deepEqual(await artefacts(source, target), []);
    } finally {
      await load.stop();
    }
  });

  it('sync on a streaming run makes the source’s additive schema changes on the target (columns, a constraint, an index) and a new table with its rows, and names what it cannot (a key-less table, a default that calls a function); the apply goes on', async function () {
    if (!(await canRun(14, 17))) this.skip();
    const { source, target } = await setup(14, 17, 2e6);
    const env = { PGRELOCATE_SOURCE_URL: toUrl(source, { password: true }), PGRELOCATE_TARGET_URL: toUrl(target, { password: true }) };
    await sync(source, target, { jobs: 2, replicaIdentityFull: true });
    await sql(
      source,
      `ALTER TABLE app.accounts ADD COLUMN nickname text COLLATE "C";
       ALTER TABLE app.accounts ADD COLUMN tier int NOT NULL DEFAULT 1;
       ALTER TABLE app.products ADD COLUMN seen timestamptz DEFAULT now();
       ALTER TABLE app.accounts ADD CONSTRAINT accounts_tier_positive CHECK (tier > 0);
       CREATE INDEX accounts_nickname_idx ON app.accounts (nickname);
       CREATE TABLE app.later (id int PRIMARY KEY, v text);
       INSERT INTO app.later SELECT g, 'row ' || g FROM generate_series(1, 300) g;
       CREATE TABLE app.keyless_later (v text);
       CREATE SEQUENCE app.invoice_no START 1000;
       SELECT nextval('app.invoice_no');
       INSERT INTO app.accounts (name, nickname, tier) VALUES ('after the change', 'nick', 3)`,
    );
    const r = await pgrelocate(['sync', '--json'], env);
    assert.equal(r.exitCode, ExitCode.ok, r.stderr);
    const schema = (JSON.parse(r.stdout) as { schema: { applied: string[]; pending: string[] } }).schema;
    assert.deepEqual(schema.applied.sort(), [
      'app.accounts: new column nickname text',
      'app.accounts: new column tier integer NOT NULL',
      'app.accounts: new constraint accounts_tier_positive (CHECK ((tier > 0)))',
      'app.accounts: new index accounts_nickname_idx (CREATE INDEX accounts_nickname_idx ON app.accounts USING btree (nickname))',
      'new sequence app.invoice_no: created on the source after the copy, missing on the target: made on the target (the cutover sets its value)',
      'new table app.later: made on the target and replicated, its rows copied',
    ]);
    assert.equal(schema.pending.length, 2, schema.pending.join('\n'));
    assert.ok(
      schema.pending.some((p) => /app\.products: new column seen timestamp with time zone: its default now\(\) gives each server/.test(p)),
    );
    assert.ok(schema.pending.some((p) => /new table app\.keyless_later: .*no primary key or replica identity/.test(p)));
    // The new table's rows, copied by the subscription before sync returned, and its changes streamed since.
    assert.equal((await sql<{ n: number }>(target, `SELECT count(*)::int AS n FROM app.later`))[0]!.n, 300);
    await sql(source, `INSERT INTO app.later VALUES (301, 'streamed')`);
    // Made as on the source: the collation, the default, NOT NULL.
    const [col] = await sql<{ def: string; nn: boolean }>(
      target,
      `SELECT pg_get_expr(d.adbin, d.adrelid) AS def, a.attnotnull AS nn
         FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = 'app.accounts'::regclass AND a.attname = 'tier'`,
    );
    assert.deepEqual([col!.def, col!.nn], ['1', true]);
    const [nick] = await sql<{ coll: string }>(
      target,
      `SELECT (SELECT collname FROM pg_collation WHERE oid = attcollation) AS coll FROM pg_attribute WHERE attrelid = 'app.accounts'::regclass AND attname = 'nickname'`,
    );
    assert.equal(nick!.coll, 'C');
    // The apply goes on: the row written after the change arrives with its new columns.
    const t0 = Date.now();
    for (;;) {
      const rows = await sql<{ nickname: string; tier: number }>(
        target,
        `SELECT nickname, tier FROM app.accounts WHERE name = 'after the change'`,
      );
      if (rows.length === 1) {
        assert.deepEqual([rows[0]!.nickname, rows[0]!.tier], ['nick', 3]);
        break;
      }
      assert.ok(Date.now() - t0 < 30_000, 'the apply resumed once the columns were on the target');
      await new Promise((res) => setTimeout(res, 500));
    }
    // What sync left, made by hand: the column on the target (its values there are the target's own), the table dropped on the source.
    await sql(target, `ALTER TABLE app.products ADD COLUMN seen timestamptz DEFAULT now()`);
    await sql(source, `DROP TABLE app.keyless_later`);
    const c = await cutover(source, target, { verify: 'count' });
    assert.equal(c.verification!.ok, true, c.verification!.mismatches.join('\n'));
    assert.equal((await sql<{ n: number }>(target, `SELECT count(*)::int AS n FROM app.later`))[0]!.n, 301);
    assert.equal((await sql<{ v: string }>(target, `SELECT last_value::text AS v FROM app.invoice_no`))[0]!.v, '1000');
    await cleanup(source, target, { unfence: true });
  });

  it('a sync killed during the copy resumes from a new snapshot and ends verified', async function () {
    if (!(await canRun(12, 17))) this.skip();
    const { source, target } = await setup(12, 17, 60e6);
    const env = { PGRELOCATE_SOURCE_URL: toUrl(source, { password: true }), PGRELOCATE_TARGET_URL: toUrl(target, { password: true }) };
    const cli = path.resolve(__dirname, '..', '..', 'scripts', 'cli.js');
    const child = execa(process.execPath, [cli, 'sync', '--jobs', '1', '--replica-identity-full', '--split-larger-than', '4MB'], {
      env,
      reject: false,
      stdin: 'ignore',
    });
    let killedAt = '';
    await new Promise<void>((resolve) => {
      child.stderr?.on('data', (d: Buffer) => {
        const text = d.toString();
        if (!killedAt && /copy: \d/.test(text)) {
          killedAt = text.trim().split('\n').pop() ?? '';
          child.kill('SIGKILL');
        }
      });
      void child.then(() => resolve());
    });
    assert.ok(killedAt, 'killed during the copy');
    const st = await pgrelocate(['status', '--json'], env);
    assert.equal((JSON.parse(st.stdout) as { phase: string }).phase, 'copy');
    const resumed = await pgrelocate(['sync', '--jobs', '2', '--replica-identity-full', '--json'], env);
    assert.equal(resumed.exitCode, ExitCode.ok, resumed.stderr);
    assert.equal((JSON.parse(resumed.stdout) as { resumed: boolean }).resumed, true);
    const slots = await sql(
      source,
      `SELECT 1 FROM pg_replication_slots WHERE slot_name LIKE 'pgrelocate%' AND database = current_database()`,
    );
    assert.equal(slots.length, 1, 'the dead attempt left no second slot');
    const lag = await pgrelocate(['status', '--json'], env);
    const s = JSON.parse(lag.stdout) as { phase: string; lag: { bytes: number } | null };
    assert.equal(s.phase, 'streaming');
    assert.ok(s.lag !== null && s.lag.bytes >= 0);
    const c = await pgrelocate(['cutover', '--verify', 'checksum', '--json'], env);
    assert.equal(c.exitCode, ExitCode.ok, c.stderr);
    assert.equal((JSON.parse(c.stdout) as { verification: { ok: boolean } }).verification.ok, true);
    const clean = await pgrelocate(['cleanup'], env);
    assert.equal(clean.exitCode, ExitCode.ok, clean.stderr);
    assert.deepEqual(await artefacts(source, target), []);
  });

  it('a verification failure aborts the cutover: the source stays writable and replicating', async function () {
    if (!(await canRun(14, 16))) this.skip();
    const { source, target } = await setup(14, 16, 3e6);
    await sync(source, target, { jobs: 2, replicaIdentityFull: true });
    // Inject a divergence: a row the target lost.
    await sql(target, `DELETE FROM audit.events WHERE id = (SELECT min(id) FROM audit.events)`);
    await assert.rejects(
      cutover(source, target, { verify: 'count' }),
      (e: PgrelocateError) => e.code === 'verify-failed' && /"audit"\."events": rows differ/.test(e.message),
    );
    // Writable: the fence was lifted for new sessions of every role.
    await sql(source, `INSERT INTO public.schema_migrations (version) VALUES ('after-abort')`);
    // Replicating: the write arrives on the target.
    let arrived = false;
    for (let i = 0; i < 100 && !arrived; i++) {
      arrived = (await sql(target, `SELECT 1 FROM public.schema_migrations WHERE version = 'after-abort'`)).length === 1;
      if (!arrived) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(arrived, 'replication kept running after the aborted cutover');
    const settings = await sql(
      source,
      `SELECT 1 FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
         AND array_to_string(setconfig, ',') LIKE '%default_transaction_read_only%'`,
    );
    assert.equal(settings.length, 0, 'no fence setting left');
    // The divergence is still there for pgrelocate verify to show.
    const v = await verify(source, target, { mode: 'count', matviews: false });
    assert.equal(v.ok, false);
    await cleanup(source, target);
    assert.deepEqual(await artefacts(source, target), []);
  });
});
