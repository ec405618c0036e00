/**
 * dump-restore of the sample database between real servers of several majors,
 * verified row for row by pgrelocate and re-checked here independently.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { toUrl } from '../../engine/conn';
import { ExitCode } from '../../engine/errors';
import { migrate } from '../../engine/strategies/dump-restore/run';
import { readRun } from '../../engine/state';
import { pgrelocate } from '../helpers/cli';
import { freshDatabase, hasServer, newestPgDump, sampleSource, server, sql } from '../helpers/servers';

const PAIRS: readonly [number, number][] = [
  [12, 17],
  [14, 16],
  [14, 14],
  [15, 17],
  [16, 17],
];

describe('dump-restore between real servers', function () {
  for (const [from, to] of PAIRS) {
    it(`migrates the sample database ${from} → ${to} and verifies it`, async function () {
      if (!hasServer(from) || !hasServer(to)) this.skip();
      const pgDump = await newestPgDump();
      if (pgDump < from) {
        // This machine has no pg_dump able to dump this source (Debian bookworm ships 15);
        // the refusal itself is tested in bad-input.test.ts.
        this.skip();
      }
      const { conn: source, sample } = await sampleSource(from);
      const target = await freshDatabase(await server(to), 'target');
      const report = await migrate(source, target, { jobs: 2 });
      assert.equal(report.ok, true);
      assert.deepEqual(
        report.steps.map((s) => [s.name, s.status]),
        [
          ['globals', 'done'],
          ['dump', 'done'],
          ['restore', 'done'],
          ['database-settings', 'done'],
          ['vacuum-analyze', 'done'],
          ['verify', 'done'],
        ],
      );
      const v = report.verification!;
      assert.equal(v.ok, true, v.mismatches.join('\n'));
      // 13 tables by rows, the materialized view by its state and columns (its rows are a refresh's, not data moved).
      assert.ok(v.tables.length >= 13, `verified ${v.tables.length} tables`);
      assert.ok(v.matviews.length >= 1 && v.matviews.every((m) => m.ok), JSON.stringify(v.matviews));
      assert.ok(v.rows > 10_000);
      assert.equal(v.largeObjects.target, 3);

      // Independent checks on the target, not through pgrelocate's verifier.
      const counts = async (c: typeof source) =>
        (
          await sql<{ t: string; n: string }>(
            c,
            `SELECT 'orders' AS t, count(*)::text AS n FROM app.orders UNION ALL SELECT 'line_items', count(*)::text FROM app.line_items
             UNION ALL SELECT 'events', count(*)::text FROM audit.events UNION ALL SELECT 'page_views', count(*)::text FROM audit.page_views
             UNION ALL SELECT 'migrations', count(*)::text FROM public.schema_migrations UNION ALL SELECT 'invoices', count(*)::text FROM billing."InvoiceDocuments"
             UNION ALL SELECT 'revenue', count(*)::text FROM billing.daily_revenue ORDER BY 1`,
          )
        ).map((r) => `${r.t}=${r.n}`);
      assert.deepEqual(await counts(target), await counts(source));
      const [meta] = await sql<{ v: string; ext: string; trg: number; app: number; seq: string; lo: string }>(
        target,
        `SELECT current_setting('server_version_num') AS v,
                (SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension) AS ext,
                (SELECT count(*)::int FROM pg_trigger WHERE NOT tgisinternal) AS trg,
                (SELECT count(*)::int FROM pg_roles WHERE rolname = 'pgrelocate_app') AS app,
                (SELECT last_value::text FROM app.orders_id_seq) AS seq,
                (SELECT convert_from(lo_get(content), 'UTF8') FROM app.attachments WHERE id = 1) AS lo`,
      );
      assert.equal(Math.floor(Number(meta!.v) / 10000), to);
      assert.equal(meta!.ext, 'citext,pgcrypto,plpgsql');
      assert.equal(meta!.trg, 2);
      assert.equal(meta!.app, 1, 'application role migrated');
      assert.ok(meta!.lo.startsWith('pgrelocate sample large object 1'));
      const [srcSeq] = await sql<{ seq: string }>(source, 'SELECT last_value::text AS seq FROM app.orders_id_seq');
      assert.equal(meta!.seq, srcSeq!.seq);
      // The application role logs in on the target with its source password.
      const t = await server(to);
      const rows = await sql(t.conn(target.database, 'pgrelocate_app', sample.appPassword), 'SELECT count(*) FROM app.orders');
      assert.equal(rows.length, 1);
      // Database-level settings, comment and grants, which pg_dump into an existing database does not carry.
      const props = async (c: typeof source) =>
        (
          await sql<{ settings: string; comment: string; acl: string }>(
            c,
            `SELECT (SELECT string_agg(coalesce(pg_get_userbyid(nullif(setrole, 0)), '*') || ':' || array_to_string(setconfig, ';'), ' ' ORDER BY 1)
                       FROM pg_db_role_setting WHERE setdatabase = d.oid) AS settings,
                    shobj_description(d.oid, 'pg_database') AS comment,
                    (SELECT string_agg(coalesce(pg_get_userbyid(nullif(a.grantee, 0)), 'PUBLIC') || '=' || a.privilege_type, ',' ORDER BY 1)
                       FROM aclexplode(d.datacl) a WHERE a.grantee <> d.datdba) AS acl
               FROM pg_database d WHERE datname = current_database()`,
          )
        )[0];
      const [sp, tp] = [await props(source), await props(target)];
      assert.equal(tp?.comment, 'pgrelocate sample shop');
      assert.deepEqual(tp, sp);
      assert.match(tp!.settings, /pgrelocate_app:statement_timeout=30s/);
      // The run is recorded in the target's pgrelocate schema.
      const run = await readRun(target);
      assert.equal(run?.status, 'done');
      assert.equal(run?.steps.length, 6);
    });
  }

  it("a filter file in pgcopydb's form: only the schema kept, less one table; the schema a kept type lives in comes without its tables; verified, and verify later compares the same", async function () {
    if (!hasServer(14) || !hasServer(17) || (await newestPgDump()) < 14) this.skip();
    const { conn: source } = await sampleSource(14);
    const target = await freshDatabase(await server(17), 'filtered');
    const env = { PGRELOCATE_SOURCE_URL: toUrl(source, { password: true }), PGRELOCATE_TARGET_URL: toUrl(target, { password: true }) };
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pgrelocate-filter-'));
    const file = path.join(dir, 'filters.ini');
    writeFileSync(file, ['[include-only-schema]', 'app', '', '[exclude-table]', 'app.attachments', ''].join('\n'));
    const m = await pgrelocate(['migrate', '--strategy', 'dump-restore', '--jobs', '2', '--json', '--filter-file', file], env);
    assert.equal(m.exitCode, ExitCode.ok, m.stderr);
    const report = JSON.parse(m.stdout) as { verification: { ok: boolean; tables: { table: string }[] } };
    assert.equal(report.verification.ok, true);
    assert.ok(report.verification.tables.length >= 5);
    assert.deepEqual(
      report.verification.tables.filter((t) => !/^"app"\./.test(t.table) || /attachments/.test(t.table)),
      [],
    );
    const rels = await sql<{ r: string }>(
      target,
      `SELECT n.nspname || '.' || c.relname AS r FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgrelocate') ORDER BY 1`,
    );
    assert.ok(
      rels.every((x) => x.r.startsWith('app.') && x.r !== 'app.attachments'),
      rels.map((x) => x.r).join(', '),
    );
    // app's tables use the domain billing.amount: the schema comes with it, without its tables.
    const [domain] = await sql<{ d: string | null }>(target, `SELECT to_regtype('billing.amount')::text AS d`);
    assert.equal(domain!.d, 'billing.amount');
    const v = await pgrelocate(['verify', '--verify', 'count'], env);
    assert.equal(v.exitCode, ExitCode.ok, v.stdout + v.stderr);
    assert.match((await pgrelocate(['status'], env)).stdout, /filter: schemas app; not tables app\.attachments/);
  });

  it('runs through the CLI with --json, then verify and status agree', async function () {
    if (!hasServer(12) || !hasServer(17) || (await newestPgDump()) < 12) this.skip();
    const { conn: source } = await sampleSource(12);
    const target = await freshDatabase(await server(17), 'cli');
    const env = { PGRELOCATE_SOURCE_URL: toUrl(source, { password: true }), PGRELOCATE_TARGET_URL: toUrl(target, { password: true }) };
    const m = await pgrelocate(['migrate', '--strategy', 'dump-restore', '--jobs', '2', '--json'], env);
    assert.equal(m.exitCode, ExitCode.ok, m.stderr);
    const report = JSON.parse(m.stdout) as { ok: boolean; steps: { name: string }[]; verification: { ok: boolean } };
    assert.equal(report.ok, true);
    assert.equal(report.verification.ok, true);
    assert.ok(!m.stdout.includes(source.password!) && !m.stderr.includes(source.password!), 'no password in output');
    const v = await pgrelocate(['verify', '--mode', 'count'], env);
    assert.equal(v.exitCode, ExitCode.ok, v.stdout + v.stderr);
    assert.match(v.stdout, /verification \(count\): OK/);
    const s = await pgrelocate(['status', '--json'], env);
    assert.equal(s.exitCode, ExitCode.ok);
    assert.equal((JSON.parse(s.stdout) as { status: string }).status, 'done');
    // A change on the target is caught by verify, with its exit code.
    await sql(target, 'DELETE FROM audit.events WHERE id = (SELECT max(id) FROM audit.events)');
    const bad = await pgrelocate(['verify'], env);
    assert.equal(bad.exitCode, ExitCode.verifyFailed, bad.stdout);
    assert.match(bad.stdout, /"audit"\."events": rows differ/);
    const c = await pgrelocate(['cleanup'], env);
    assert.equal(c.exitCode, ExitCode.ok);
    const left = await sql(target, `SELECT 1 FROM pg_namespace WHERE nspname = 'pgrelocate'`);
    assert.equal(left.length, 0);
  });
});
