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
});
