/**
 * Schemas users bring (issue 13), each finding on a minimal schema: what
 * PostgreSQL's regression database and public samples showed a method could
 * not move, or could not verify.
 */
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { toUrl, type ConnInfo } from '../../engine/conn';
import { ExitCode } from '../../engine/errors';
import { compareMatviews } from '../../engine/verify';
import { startProfiledServer } from '../../engine/local/profiles';
import { pgrelocate } from '../helpers/cli';
import { freshDatabase, hasServer, newestPgDump, server, sql } from '../helpers/servers';

const url = (c: ConnInfo): string => toUrl(c, { password: true });

describe('schemas users bring', function () {
  before(async function () {
    if (!hasServer(14) || !hasServer(17) || (await newestPgDump()) < 14) this.skip();
  });

  it('materialized views verify by presence, populated state and columns: WITH NO DATA and stale ones move without a false difference', async function () {
    const source = await freshDatabase(await server(14), 'mv_src');
    await sql(
      source,
      `CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, g FROM generate_series(1, 10) g;
       CREATE MATERIALIZED VIEW never AS SELECT id FROM t WITH NO DATA;
       CREATE MATERIALIZED VIEW stale AS SELECT count(*) AS n FROM t;
       INSERT INTO t VALUES (11, 11);`,
    );
    const target = await freshDatabase(await server(17), 'mv_tgt');
    const env = { PGRELOCATE_SOURCE_URL: url(source), PGRELOCATE_TARGET_URL: url(target) };
    const m = await pgrelocate(['migrate', '--strategy', 'dump-restore', '--jobs', '2', '--json'], env);
    assert.equal(m.exitCode, ExitCode.ok, m.stderr + m.stdout.slice(0, 1500));
    const [never] = await sql<{ p: boolean }>(target, `SELECT ispopulated AS p FROM pg_matviews WHERE matviewname = 'never'`);
    assert.equal(never!.p, false, 'WITH NO DATA stays unpopulated');
    // A view that is missing or differs is still caught.
    await sql(target, 'DROP MATERIALIZED VIEW never');
    const v = await pgrelocate(['verify', '--verify', 'count'], env);
    assert.equal(v.exitCode, ExitCode.verifyFailed, v.stdout);
    assert.match(v.stdout, /materialized view public\.never: missing on target/);
    assert.deepEqual(
      compareMatviews(
        new Map([['public.a', { populated: true, definition: 'SELECT 1' }]]),
        new Map([['public.a', { populated: false, definition: 'SELECT 1' }]]),
      ),
      [{ name: 'public.a', ok: false, problem: 'populated on the source, not populated on the target' }],
    );
  });

  it('a built-in type without a binary form (aclitem, and arrays of it) is copied as text', async function () {
    const source = await freshDatabase(await server(14), 'acl_src');
    await sql(
      source,
      `CREATE TABLE grants (id int PRIMARY KEY, a aclitem, aa aclitem[]);
       INSERT INTO grants SELECT g, makeaclitem('postgres'::regrole, 'postgres'::regrole, 'SELECT', false),
                                ARRAY[makeaclitem('postgres'::regrole, 'postgres'::regrole, 'UPDATE', true)]
         FROM generate_series(1, 5) g;`,
    );
    const target = await freshDatabase(await server(17), 'acl_tgt');
    const c = await pgrelocate(['copy', '--jobs', '2', '--verify', 'checksum', '--json', '--source', url(source), '--target', url(target)]);
    assert.equal(c.exitCode, ExitCode.ok, c.stderr);
    const report = JSON.parse(c.stdout) as { copy: { textTables: string[] } };
    assert.deepEqual(report.copy.textTables, ['"public"."grants"']);
    const [n] = await sql<{ n: string }>(target, `SELECT count(*)::text AS n FROM grants WHERE a::text LIKE 'postgres=r/postgres'`);
    assert.equal(n!.n, '5');
  });

  it('--replica-identity-full: a key-less table with a column that has no equality operator is left out of the publication and copied again inside the fence, so its updates arrive', async function () {
    const source = await freshDatabase(await server(14), 'eq_src');
    await sql(
      source,
      `CREATE TABLE shapes (p point, j json, n int); INSERT INTO shapes VALUES ('(1,2)', '{}', 1), ('(3,4)', '[]', 2);
       CREATE TABLE notes (body varchar(20), at timestamptz, tags text[], net cidr); INSERT INTO notes VALUES ('x', now(), '{a}', '10.0.0.0/8');`,
    );
    const target = await freshDatabase(await server(17), 'eq_tgt');
    const env = { PGRELOCATE_SOURCE_URL: url(source), PGRELOCATE_TARGET_URL: url(target) };
    const c = await pgrelocate(['check', '--strategy', 'logical', '--replica-identity-full'], env);
    assert.equal(c.exitCode, ExitCode.ok, c.stdout);
    assert.match(c.stdout, /copied again in full inside the cutover window: "public"."shapes" \(p, j\)/);
    // varchar and cidr compare through text's and inet's operators: notes is replicated with REPLICA IDENTITY FULL.
    assert.doesNotMatch(c.stdout, /"public"."notes" \(/);
    const s = await pgrelocate(['sync', '--replica-identity-full', '--quiet'], env);
    assert.equal(s.exitCode, ExitCode.ok, s.stderr);
    const [pub] = await sql<{ t: string }>(
      source,
      `SELECT string_agg(tablename, ',') AS t FROM pg_publication_tables WHERE pubname LIKE 'pgrelocate%'`,
    );
    assert.equal(pub!.t, 'notes');
    await sql(source, `UPDATE shapes SET p = '(9,9)' WHERE n = 1; DELETE FROM shapes WHERE n = 2; UPDATE notes SET body = 'y'`);
    const cut = await pgrelocate(['cutover', '--verify', 'checksum', '--quiet'], env);
    assert.equal(cut.exitCode, ExitCode.ok, cut.stderr + cut.stdout);
    const rows = await sql<{ p: string; n: number }>(target, `SELECT p::text, n FROM shapes ORDER BY n`);
    assert.deepEqual(rows, [{ p: '(9,9)', n: 1 }]);
    const [note] = await sql<{ body: string }>(target, `SELECT body FROM notes`);
    assert.equal(note!.body, 'y');
  });

  it("copy and sync+cutover keep the database's own settings and large-object comments, as dump-restore does", async function () {
    const source = await freshDatabase(await server(14), 'props_src');
    const db = source.database;
    await sql(
      source,
      `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);
       ALTER DATABASE "${db}" SET bytea_output = 'escape'; ALTER DATABASE "${db}" SET timezone_abbreviations = 'India';
       SELECT lo_from_bytea(4242, 'x'); COMMENT ON LARGE OBJECT 4242 IS 'terms v1';`,
    );
    const props = async (c: ConnInfo): Promise<string[]> =>
      (
        await sql<{ e: string }>(
          c,
          `SELECT unnest(setconfig) AS e FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()) AND setrole = 0
           UNION ALL SELECT 'lo ' || obj_description(4242, 'pg_largeobject') ORDER BY 1`,
        )
      ).map((r) => r.e);
    const want = ['bytea_output=escape', 'lo terms v1', 'timezone_abbreviations=India'];
    const copied = await freshDatabase(await server(17), 'props_copy');
    const c = await pgrelocate(['copy', '--jobs', '2', '--quiet', '--source', url(source), '--target', url(copied)]);
    assert.equal(c.exitCode, ExitCode.ok, c.stderr);
    assert.deepEqual(await props(copied), want);
    const synced = await freshDatabase(await server(17), 'props_sync');
    const env = { PGRELOCATE_SOURCE_URL: url(source), PGRELOCATE_TARGET_URL: url(synced) };
    assert.equal((await pgrelocate(['sync', '--quiet'], env)).exitCode, ExitCode.ok);
    const cut = await pgrelocate(['cutover', '--quiet'], env);
    assert.equal(cut.exitCode, ExitCode.ok, cut.stderr);
    // The source's fence (default_transaction_read_only) is not among them.
    assert.deepEqual(await props(synced), want);
  });

  it('check refuses what the target server cannot take — C libraries it cannot load, lz4 it lacks, generated columns over plain parents on 16+ — naming each, and passes once the printed fixes are applied', async function () {
    if (!hasServer(15)) this.skip();
    const source = await freshDatabase(await server(15), 'cap_src');
    // A library the source loaded once, gone since (CREATE FUNCTION loads it whatever check_function_bodies says).
    const libDir = mkdtempSync(path.join(os.tmpdir(), 'pgrelocate-lib-'));
    chmodSync(libDir, 0o755);
    const gone = path.join(libDir, 'gone.so');
    copyFileSync('/usr/lib/postgresql/15/lib/autoinc.so', gone);
    await sql(
      source,
      `-- the target has its own build of autoinc: fine; refint by the 15 path is built for 15; the third is gone
       CREATE FUNCTION autoinc() RETURNS trigger AS '$libdir/autoinc' LANGUAGE c;
       CREATE FUNCTION check_primary_key() RETURNS trigger AS '/usr/lib/postgresql/15/lib/refint.so' LANGUAGE c;
       CREATE FUNCTION vanished() RETURNS trigger AS '${gone}', 'autoinc' LANGUAGE c;
       CREATE TABLE docs (id int PRIMARY KEY, body text COMPRESSION lz4); INSERT INTO docs SELECT g, repeat('x', 5000) FROM generate_series(1, 20) g;
       CREATE TABLE gtest_normal (a int, b int);
       CREATE TABLE gtest_normal_child (a int, b int GENERATED ALWAYS AS (a * 2) STORED) INHERITS (gtest_normal);
       INSERT INTO gtest_normal_child (a) VALUES (1), (2);`,
    );
    rmSync(libDir, { recursive: true, force: true });
    const target = await freshDatabase(await server(17), 'cap_tgt');
    const env = { PGRELOCATE_SOURCE_URL: url(source), PGRELOCATE_TARGET_URL: url(target) };
    for (const strategy of ['dump-restore', 'logical']) {
      const c = await pgrelocate(['check', '--strategy', strategy], env);
      assert.equal(c.exitCode, ExitCode.checkFailed, c.stdout);
      assert.match(c.stdout, /public\.check_primary_key\(\) \(incompatible library[^)]*version mismatch/);
      assert.match(c.stdout, /public\.vanished\(\) \(could not access file "[^"]*gone\.so"/);
      assert.doesNotMatch(c.stdout, /public\.autoinc\(\)/, 'the target loads its own autoinc');
      assert.match(c.stdout, /lz4 compression[^\n]*public\.docs\.body/);
      assert.match(c.stdout, /ALTER TABLE public\.docs ALTER COLUMN body SET COMPRESSION pglz;/);
      assert.match(c.stdout, /generated where the parent's column is not[^\n]*public\.gtest_normal_child\.b/);
    }
    // The probe left nothing on the target.
    const [n] = await sql<{ n: number }>(target, `SELECT count(*)::int AS n FROM pg_proc WHERE proname = 'pgrelocate_probe'`);
    assert.equal(n!.n, 0);
    // A managed target's user may create no C function at all.
    const rds = await startProfiledServer('rds', 17, { name: 'rds17cap' });
    try {
      const managed = await rds.createDatabase('cap_rds');
      const m = await pgrelocate(['check', '--strategy', 'dump-restore'], {
        PGRELOCATE_SOURCE_URL: url(source),
        PGRELOCATE_TARGET_URL: url(managed),
      });
      assert.equal(m.exitCode, ExitCode.checkFailed, m.stdout);
      assert.match(m.stdout, /3 source functions are written in C outside any extension[^\n]*only a superuser may create them/);
    } finally {
      await rds.server.stop();
    }
    await sql(
      source,
      `DROP FUNCTION check_primary_key(); DROP FUNCTION vanished();
       ALTER TABLE public.docs ALTER COLUMN body SET COMPRESSION pglz;
       ALTER TABLE gtest_normal_child NO INHERIT gtest_normal; ALTER TABLE gtest_normal_child ALTER COLUMN b DROP EXPRESSION;
       ALTER TABLE gtest_normal_child INHERIT gtest_normal;`,
    );
    const m = await pgrelocate(['migrate', '--strategy', 'dump-restore', '--verify', 'checksum', '--quiet'], env);
    assert.equal(m.exitCode, ExitCode.ok, m.stderr + m.stdout);
    const [docs] = await sql<{ n: number; l: number }>(target, `SELECT count(*)::int AS n, min(length(body)) AS l FROM docs`);
    assert.deepEqual(docs, { n: 20, l: 5000 });
  });
});
