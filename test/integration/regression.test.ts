/**
 * PostgreSQL 15's regression database moved to 17 by every method (issue 13):
 * refused by check while it holds what 17 cannot take, adjusted the way
 * pg_upgrade's cross-version test adjusts it, then moved by copy, dump-restore
 * and sync + cutover, each compared object by object with the source and
 * judged against a plain pg_dump | pg_restore into the same target.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  beyondBaseline,
  compareSnapshots,
  formatDifferences,
  snapshot,
  type Comparison,
  type Difference,
  type Snapshot,
} from '../../engine/compare';
import { toUrl, type ConnInfo } from '../../engine/conn';
import { ExitCode } from '../../engine/errors';
import type { LocalServer } from '../../engine/local/cluster';
import { libpqUrl, runTool } from '../../engine/tool-exec';
import { findClientTools } from '../../engine/tools';
import { pgrelocate } from '../helpers/cli';
import { startRegressionServer, type RegressionTemplate } from '../helpers/regression-db';
import { freshDatabase, hasServer, server, sql } from '../helpers/servers';

const url = (c: ConnInfo): string => toUrl(c, { password: true });

/** What pg_upgrade's cross-version test does to a 15 regression database before moving it to 16+, and what a target without lz4 needs. */
const ADJUST = `
DO $$
DECLARE r record;
BEGIN
  -- the test module's C functions: regress.so and the contrib modules it loads are built for 15
  FOR r IN SELECT p.oid::regprocedure AS f FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
            WHERE l.lanname = 'c' AND p.pronamespace <> 'pg_catalog'::regnamespace
              AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e') LOOP
    IF EXISTS (SELECT 1 FROM pg_proc WHERE oid = r.f) THEN EXECUTE 'DROP FUNCTION ' || r.f || ' CASCADE'; END IF;
  END LOOP;
  -- lz4: the npm-packaged targets are built without it
  FOR r IN SELECT a.attrelid::regclass AS t, quote_ident(a.attname) AS c, c.relkind FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
            WHERE a.attcompression = 'l' AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'm') LOOP
    EXECUTE format('ALTER %s %s ALTER COLUMN %s SET COMPRESSION pglz', CASE WHEN r.relkind = 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END, r.t, r.c);
  END LOOP;
END $$;
-- 16 refuses a generated column over a plain parent column
DROP TABLE public.gtest_normal_child, public.gtest_normal_child2;`;

describe('PostgreSQL 15 regression database → 17', function () {
  let source: ConnInfo;
  let regress: LocalServer;
  let template: RegressionTemplate;
  let sourceSnap: Snapshot;
  let baseline: Comparison;
  before(async function () {
    const t0 = Date.now();
    if (!hasServer(15) || !hasServer(17) || ((await findClientTools())[0]?.major ?? 0) < 15) this.skip();
    try {
      ({ server: regress, template } = await startRegressionServer());
    } catch (e) {
      if (process.getuid?.() === 0) throw e;
      console.log(
        `      skipped: the regression database could not be built (${(e as Error).message.split('\n')[0]}); run the tests as root once to build it.`,
      );
      this.skip();
    }
    source = regress.conn('regression');
    console.log(
      `      regression database ${template.version}: built in ${template.seconds} s (cached), ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
  });

  after(async function () {
    await regress?.stop();
  });

  it('check refuses the unadjusted database, naming each object 17 cannot take', async function () {
    const target = await freshDatabase(await server(17), 'regr_check');
    const env = { PGRELOCATE_SOURCE_URL: url(source), PGRELOCATE_TARGET_URL: url(target) };
    for (const strategy of ['dump-restore', 'logical']) {
      const c = await pgrelocate(['check', '--strategy', strategy], env);
      assert.equal(c.exitCode, ExitCode.checkFailed, c.stdout);
      assert.match(
        c.stdout,
        /cannot load the C library of \d+ source functions: [^\n]*public\.widget_in\(cstring\)[^\n]*\(could not load library "[^"]*regress\.so"/,
      );
      // Each object is named: every C function and lz4 column of the source.
      const named = await sql<{ o: string }>(
        source,
        `SELECT quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS o
           FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE l.lanname = 'c' AND n.nspname <> 'pg_catalog'
         UNION ALL
         SELECT a.attrelid::regclass::text || '.' || quote_ident(a.attname) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
          WHERE a.attcompression = 'l' AND c.relkind IN ('r', 'p', 'm') AND NOT a.attisdropped`,
      );
      assert.ok(named.length > 20);
      for (const { o } of named) assert.ok(c.stdout.includes(o), `${o} is not named:\n${c.stdout}`);
      assert.match(c.stdout, /use lz4 compression[^\n]*public\.cmdata1\.f1[^\n]*public\.compressmv\.x/);
      assert.match(c.stdout, /ALTER MATERIALIZED VIEW public\.compressmv ALTER COLUMN x SET COMPRESSION pglz;/);
      assert.match(c.stdout, /public\.gtest_normal_child\.b/);
    }
  });

  it('adjusted as pg_upgrade adjusts it, it passes check; a plain pg_dump | pg_restore sets the baseline', async function () {
    await sql(source, ADJUST);
    sourceSnap = await snapshot(source, 'source');
    const target = await freshDatabase(await server(17), 'regr_base');
    const c = await pgrelocate(['check', '--strategy', 'dump-restore'], {
      PGRELOCATE_SOURCE_URL: url(source),
      PGRELOCATE_TARGET_URL: url(target),
    });
    assert.equal(c.exitCode, ExitCode.ok, c.stdout);
    const tools = (await findClientTools())[0]!;
    const roles = await runTool(
      tools.pgDumpAll,
      ['--roles-only', '--no-role-passwords', '-d', libpqUrl(regress.conn())],
      [regress.conn()],
      {
        captureStdout: true,
      },
    );
    assert.equal(roles.exitCode, 0, roles.stderr);
    for (const line of roles.stdout.split('\n').filter((l) => /^(CREATE|ALTER|GRANT) ROLE|^GRANT /.test(l))) {
      await sql(target, line).catch(() => undefined); // roles another test made already exist
    }
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pgrelocate-baseline-'));
    try {
      const file = path.join(dir, 'regression.dump');
      const d = await runTool(tools.pgDump, ['-Fc', '-f', file, '-d', libpqUrl(source)], [source]);
      assert.equal(d.exitCode, 0, d.stderr);
      const r = await runTool(tools.pgRestore, ['-d', libpqUrl(target), file], [target]);
      // pg_restore goes on past errors and counts them: the baseline is what it achieves.
      console.log(
        `      baseline pg_dump | pg_restore ${tools.version}: exit ${r.exitCode}, ${(r.stderr.match(/^pg_restore: error:/gm) ?? []).length} errors`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    baseline = compareSnapshots(sourceSnap, await snapshot(target, 'baseline'));
    report('baseline', baseline, []);
  });

  /** Compare a method's target with the source; no difference may go beyond the baseline's. */
  async function judge(method: string, target: ConnInfo, src: Snapshot = sourceSnap): Promise<void> {
    const cmp = compareSnapshots(src, await snapshot(target, method));
    const { beyond, shared } = beyondBaseline(cmp.differences, baseline.differences);
    report(method, cmp, shared);
    assert.deepEqual(beyond, [], `${method}: ${beyond.length} differences beyond pg_dump's own:\n${formatDifferences(beyond)}`);
  }

  it('copy moves it with no difference beyond the baseline', async function () {
    assert.ok(sourceSnap, 'needs the baseline test');
    const target = await freshDatabase(await server(17), 'regr_copy');
    const c = await pgrelocate(['copy', '--jobs', '2', '--quiet', '--source', url(source), '--target', url(target)]);
    assert.equal(c.exitCode, ExitCode.ok, c.stderr + c.stdout);
    await judge('copy', target);
  });

  it('migrate --strategy dump-restore moves it with no difference beyond the baseline', async function () {
    assert.ok(sourceSnap, 'needs the baseline test');
    const target = await freshDatabase(await server(17), 'regr_dr');
    const m = await pgrelocate(['migrate', '--strategy', 'dump-restore', '--jobs', '2', '--quiet'], {
      PGRELOCATE_SOURCE_URL: url(source),
      PGRELOCATE_TARGET_URL: url(target),
    });
    assert.equal(m.exitCode, ExitCode.ok, m.stderr + m.stdout);
    await judge('dump-restore', target);
  });

  it('sync + cutover, with changes while streaming, moves it with no difference beyond the baseline', async function () {
    assert.ok(sourceSnap, 'needs the baseline test');
    const target = await freshDatabase(await server(17), 'regr_sync');
    const env = { PGRELOCATE_SOURCE_URL: url(source), PGRELOCATE_TARGET_URL: url(target) };
    const s = await pgrelocate(['sync', '--replica-identity-full', '--jobs', '2', '--quiet'], env);
    assert.equal(s.exitCode, ExitCode.ok, s.stderr + s.stdout);
    // Writes of an application while it streams: replicated tables (REPLICA IDENTITY FULL, partitions,
    // inheritance, arrays, JSON) and ones copied again at cutover (a point column), sequences, a large object.
    const changes = [
      `UPDATE tenk1 SET stringu1 = 'pgrelocate' WHERE unique1 < 200`,
      `DELETE FROM onek WHERE unique1 >= 900`,
      `INSERT INTO int4_tbl VALUES (424242)`,
      `UPDATE point_tbl SET f1 = '(7,7)' WHERE f1 ~= '(0,0)'`,
      `INSERT INTO person VALUES ('pgrelocate', 42, '(1,1)')`,
      `UPDATE emp SET salary = salary + 1`,
      `UPDATE arrtest SET a[1] = 99`,
      `UPDATE testjsonb SET j = j || '{"pgrelocate": true}' WHERE j ? 'age'`,
      `INSERT INTO num_data VALUES (99, 1.5)`,
      `SELECT count(nextval(format('%I.%I', schemaname, sequencename))) FROM pg_sequences
        WHERE increment_by > 0 AND coalesce(last_value, start_value) < max_value - 10 * increment_by`,
      `SELECT lo_from_bytea(0, 'written while streaming')`,
    ];
    for (const q of changes) await sql(source, q);
    const cut = await pgrelocate(['cutover', '--verify', 'checksum', '--quiet'], env);
    assert.equal(cut.exitCode, ExitCode.ok, cut.stderr + cut.stdout);
    const clean = await pgrelocate(['cleanup', '--source', url(source), '--target', url(target)]);
    assert.equal(clean.exitCode, ExitCode.ok, clean.stderr + clean.stdout);
    // The source as it stood when the fence went up is what the target must hold.
    await judge('sync + cutover', target, await snapshot(source, 'source after cutover'));
  });
});

function report(method: string, cmp: Comparison, shared: readonly Difference[]): void {
  const types = Object.entries(cmp.byType)
    .sort((a, b) => b[1] - a[1])
    .map(([t, n]) => `${n} ${t}`)
    .join(', ');
  const norm = Object.entries(cmp.normalised)
    .map(([n, k]) => `${n}: ${k}`)
    .join('; ');
  console.log(
    `      ${method}: ${cmp.compared} objects compared; ${cmp.differences.length} differences${shared.length ? ` (${shared.length} shared with the baseline)` : ''}` +
      (norm ? `; normalised ${norm}` : '') +
      (method === 'baseline' ? `\n        objects: ${types}\n${formatDifferences(cmp.differences, 200).replace(/^/gm, '        ')}` : ''),
  );
}
