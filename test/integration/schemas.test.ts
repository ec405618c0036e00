/**
 * Schemas users bring (issue 13), each finding on a minimal schema: what
 * PostgreSQL's regression database and public samples showed a method could
 * not move, or could not verify.
 */
import assert from 'node:assert/strict';
import { toUrl, type ConnInfo } from '../../engine/conn';
import { ExitCode } from '../../engine/errors';
import { compareMatviews } from '../../engine/verify';
import { pgferry } from '../helpers/cli';
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
    const env = { PGFERRY_SOURCE_URL: url(source), PGFERRY_TARGET_URL: url(target) };
    const m = await pgferry(['migrate', '--strategy', 'dump-restore', '--jobs', '2', '--json'], env);
    assert.equal(m.exitCode, ExitCode.ok, m.stderr + m.stdout.slice(0, 1500));
    const [never] = await sql<{ p: boolean }>(target, `SELECT ispopulated AS p FROM pg_matviews WHERE matviewname = 'never'`);
    assert.equal(never!.p, false, 'WITH NO DATA stays unpopulated');
    // A view that is missing or differs is still caught.
    await sql(target, 'DROP MATERIALIZED VIEW never');
    const v = await pgferry(['verify', '--verify', 'count'], env);
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
    const c = await pgferry(['copy', '--jobs', '2', '--verify', 'checksum', '--json', '--source', url(source), '--target', url(target)]);
    assert.equal(c.exitCode, ExitCode.ok, c.stderr);
    const report = JSON.parse(c.stdout) as { copy: { textTables: string[] } };
    assert.deepEqual(report.copy.textTables, ['"public"."grants"']);
    const [n] = await sql<{ n: string }>(target, `SELECT count(*)::text AS n FROM grants WHERE a::text LIKE 'postgres=r/postgres'`);
    assert.equal(n!.n, '5');
  });

  it('--replica-identity-full: a key-less table with a column that has no equality operator is refused by check, naming the columns', async function () {
    const source = await freshDatabase(await server(14), 'eq_src');
    await sql(
      source,
      `CREATE TABLE shapes (p point, j json, n int); INSERT INTO shapes VALUES ('(1,2)', '{}', 1);
       CREATE TABLE notes (body text, at timestamptz, tags text[]); INSERT INTO notes VALUES ('x', now(), '{a}');`,
    );
    const target = await freshDatabase(await server(17), 'eq_tgt');
    const env = { PGFERRY_SOURCE_URL: url(source), PGFERRY_TARGET_URL: url(target) };
    const c = await pgferry(['check', '--strategy', 'logical', '--replica-identity-full'], env);
    assert.equal(c.exitCode, ExitCode.checkFailed, c.stdout);
    assert.match(c.stdout, /"public"."shapes" \(p, j\)/);
    assert.doesNotMatch(c.stdout, /"public"."notes" \(/);
    await sql(source, 'ALTER TABLE shapes ADD PRIMARY KEY (n)');
    const ok = await pgferry(['check', '--strategy', 'logical', '--replica-identity-full'], env);
    assert.equal(ok.exitCode, ExitCode.ok, ok.stdout);
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
    const c = await pgferry(['copy', '--jobs', '2', '--quiet', '--source', url(source), '--target', url(copied)]);
    assert.equal(c.exitCode, ExitCode.ok, c.stderr);
    assert.deepEqual(await props(copied), want);
    const synced = await freshDatabase(await server(17), 'props_sync');
    const env = { PGFERRY_SOURCE_URL: url(source), PGFERRY_TARGET_URL: url(synced) };
    assert.equal((await pgferry(['sync', '--quiet'], env)).exitCode, ExitCode.ok);
    const cut = await pgferry(['cutover', '--quiet'], env);
    assert.equal(cut.exitCode, ExitCode.ok, cut.stderr);
    // The source's fence (default_transaction_read_only) is not among them.
    assert.deepEqual(await props(synced), want);
  });
});
