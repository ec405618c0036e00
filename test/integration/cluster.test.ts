/**
 * Whole clusters (`--all-databases`, `--databases`) on servers of their own:
 * three databases — the sample (extensions, a role's setting in it, under
 * write load), one with an extension of its own, one with a role-specific
 * setting — moved in one run: roles once, each database created on the target
 * as the source has it, each verified, and one cutover with one blackout.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readlinkSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { toUrl, withDatabase, type ConnInfo } from '../../engine/conn';
import { ExitCode, type PgrelocateError } from '../../engine/errors';
import { BucardoControl, controlDir } from '../../engine/strategies/bucardo/control';
import { startServer, type LocalServer } from '../../engine/local/cluster';
import { APP_ROLE, loadSample, loadSideDatabases } from '../../scripts/sample-db';
import { WriteLoad } from '../../scripts/write-load';
import { pgrelocate } from '../helpers/cli';
import { hasServer, newestPgDump, sql } from '../helpers/servers';

const readlinkSafe = (p: string): string | null => {
  try {
    return readlinkSync(p);
  } catch {
    return null;
  }
};

/** The three databases, made on `s`: returns the sample's application password. */
async function threeDatabases(s: LocalServer): Promise<string> {
  await sql(s.conn('postgres'), `CREATE DATABASE shop`);
  const sample = await loadSample(s.conn('shop'), { sizeBytes: 2e6 });
  await loadSideDatabases(s.conn('postgres'));
  return sample.appPassword;
}

describe('whole clusters: --all-databases and --databases', function () {
  let src: LocalServer;
  let dst: LocalServer;

  before(async function () {
    if (!hasServer(14) || !hasServer(17) || (await newestPgDump()) < 14) this.skip();
    src = await startServer({ major: 14, name: 'cluster-src' });
    dst = await startServer({ major: 17, name: 'cluster-dst' });
  });
  after(async function () {
    await Promise.all([src?.stop(), dst?.stop()]);
  });

  /** The three databases on the source, made by the first test that needs them; the sample's application password. */
  let made: Promise<string> | undefined;
  const databases = (): Promise<string> => (made ??= threeDatabases(src));

  /** The CLI's environment: the source server, and `target` (both through their postgres database). */
  const envFor = (target: LocalServer): Record<string, string> => ({
    PGRELOCATE_SOURCE_URL: toUrl(src.conn('postgres'), { password: true }),
    PGRELOCATE_TARGET_URL: toUrl(target.conn('postgres'), { password: true }),
  });

  it('migrate --all-databases by logical replication under write load: three databases created and moved, roles once, each verified, one cutover with one blackout; status and cleanup over all', async function () {
    const appPassword = await databases();
    const env = envFor(dst);
    const check = await pgrelocate(['check', '--all-databases', '--replica-identity-full', '--json'], env);
    assert.equal(check.exitCode, ExitCode.ok, check.stdout + check.stderr);
    const checked = JSON.parse(check.stdout) as { databases: { database: string; created: boolean }[] };
    // postgres holds no table of its own: not moved.
    assert.deepEqual(
      checked.databases.map((d) => [d.database, d.created]),
      [
        ['crm', true],
        ['metrics', true],
        ['shop', true],
      ],
    );
    const planned = await pgrelocate(['plan', '--all-databases', '--replica-identity-full', '--json'], env);
    assert.equal(planned.exitCode, ExitCode.ok, planned.stderr);
    assert.deepEqual(
      (JSON.parse(planned.stdout) as { databases: { database: string; strategy: string }[] }).databases.map((d) => [
        d.database,
        d.strategy,
      ]),
      [
        ['crm', 'logical'],
        ['metrics', 'logical'],
        ['shop', 'logical'],
      ],
    );
    const shop = (c: ConnInfo): ConnInfo => withDatabase(c, 'shop');
    const load = new WriteLoad(shop(src.conn()), { rate: 100, workers: 2, user: { name: APP_ROLE, password: appPassword } });
    await load.start();
    try {
      const m = await pgrelocate(
        ['migrate', '--all-databases', '--strategy', 'logical', '--replica-identity-full', '--jobs', '2', '--json'],
        env,
      );
      assert.equal(m.exitCode, ExitCode.ok, m.stderr.slice(-3000));
      const report = JSON.parse(m.stdout) as {
        cutover: {
          blackoutSeconds: number;
          databases: { database: string; result: { blackoutSeconds: number; verification: { ok: boolean; tables: unknown[] } } }[];
        };
      };
      load.switchTo(shop(dst.conn()));
      await new Promise((r) => setTimeout(r, 300));
      await load.stop();
      const ledger = await load.ledger.check(shop(dst.conn()));
      assert.equal(ledger.ok, true, JSON.stringify(ledger).slice(0, 400));
      assert.deepEqual(
        report.cutover.databases.map((d) => [d.database, d.result.verification.ok]),
        [
          ['crm', true],
          ['metrics', true],
          ['shop', true],
        ],
      );
      // One blackout: from the first fence to the last switch, at least each database's own.
      const each = report.cutover.databases.map((d) => d.result.blackoutSeconds);
      assert.ok(
        report.cutover.blackoutSeconds >= Math.max(...each) - 0.001 && report.cutover.blackoutSeconds < 5,
        JSON.stringify(report.cutover),
      );
      // Each database as the source has it: owner, extension, the role's setting in it, the rows.
      const dbs = await sql<{ d: string; owner: string }>(
        dst.conn('postgres'),
        `SELECT datname AS d, pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname IN ('shop', 'crm', 'metrics') ORDER BY 1`,
      );
      assert.deepEqual(
        dbs.find((x) => x.d === 'metrics'),
        { d: 'metrics', owner: 'reporter' },
      );
      assert.equal(
        (
          await sql<{ n: number }>(
            dst.conn('crm'),
            `SELECT count(*)::int AS n FROM contacts WHERE secret = digest('s' || substr(split_part(email, '@', 1), 2), 'sha256')`,
          )
        )[0]!.n,
        300,
      );
      const [setting] = await sql<{ s: string[] }>(
        dst.conn('postgres'),
        `SELECT setconfig AS s FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = 'metrics') AND setrole = 'reporter'::regrole`,
      );
      assert.deepEqual(setting?.s, ['work_mem=8MB']);
      // Every source database fenced by the one cutover.
      for (const db of ['shop', 'crm', 'metrics'])
        await assert.rejects(sql(withDatabase(src.conn(), db), `CREATE TABLE written_after (x int)`), /read-only/, db);

      const again = await pgrelocate(['cutover', '--all-databases'], env);
      assert.notEqual(again.exitCode, ExitCode.ok);
      assert.match(again.stderr, /Every database \(crm, metrics, shop\) was already cut over/);
      const st = await pgrelocate(['status', '--all-databases', '--json'], env);
      assert.equal(st.exitCode, ExitCode.ok, st.stderr);
      const rows = (JSON.parse(st.stdout) as { databases: { database: string; phase: string }[] }).databases;
      assert.deepEqual(
        rows.map((r) => [r.database, r.phase]),
        [
          ['crm', 'done'],
          ['metrics', 'done'],
          ['shop', 'done'],
        ],
      );
      // The databases nothing wrote to since (the application writes on in shop, now on the new server).
      const v = await pgrelocate(['verify', '--databases', 'crm,metrics', '--verify', 'count'], env);
      assert.equal(v.exitCode, ExitCode.ok, v.stdout + v.stderr);
      assert.equal((v.stdout.match(/verification \(count\): OK/g) ?? []).length, 2, v.stdout);
      const cl = await pgrelocate(['cleanup', '--all-databases', '--unfence'], env);
      assert.equal(cl.exitCode, ExitCode.ok, cl.stderr);
      for (const db of ['shop', 'crm', 'metrics']) {
        assert.deepEqual(
          await sql(withDatabase(src.conn(), db), `SELECT slot_name FROM pg_replication_slots WHERE database = current_database()`),
          [],
        );
        await sql(withDatabase(src.conn(), db), `CREATE TABLE written_after (x int)`);
      }
    } finally {
      await load.stop();
    }
  });

  it('migrate --databases by dump-restore: the two named moved and verified, each with VACUUM ANALYZE; a name the source lacks refused before anything changes', async function () {
    await databases();
    const target = await startServer({ major: 16, name: 'cluster-dr' });
    try {
      const env = envFor(target);
      const bad = await pgrelocate(['migrate', '--databases', 'crm,nope', '--strategy', 'dump-restore'], env);
      assert.equal(bad.exitCode, ExitCode.usage, bad.stderr);
      assert.match(bad.stderr, /no database "nope".*Name databases it has: .*crm/s);
      assert.deepEqual(await sql(target.conn('postgres'), `SELECT datname FROM pg_database WHERE datname = 'crm'`), []);
      const m = await pgrelocate(['migrate', '--databases', 'crm,metrics', '--strategy', 'dump-restore', '--jobs', '2', '--json'], env);
      assert.equal(m.exitCode, ExitCode.ok, m.stderr.slice(-3000));
      const r = JSON.parse(m.stdout) as { databases: { database: string; verification: { ok: boolean }; steps: { name: string }[] }[] };
      assert.deepEqual(
        r.databases.map((d) => [d.database, d.verification.ok, d.steps.some((s) => s.name === 'vacuum-analyze')]),
        [
          ['crm', true, true],
          ['metrics', true, true],
        ],
      );
      assert.deepEqual(await sql(target.conn('postgres'), `SELECT datname FROM pg_database WHERE datname = 'shop'`), []);
    } finally {
      await target.stop();
    }
  });

  it('copy --databases: a one-time copy of each named database, verified', async function () {
    await databases();
    const target = await startServer({ major: 15, name: 'cluster-copy' });
    try {
      const env = envFor(target);
      const c = await pgrelocate(['copy', '--databases', 'metrics,crm', '--jobs', '2', '--json'], env);
      assert.equal(c.exitCode, ExitCode.ok, c.stderr.slice(-3000));
      // A copy that does not verify fails its verify step; each database's ran.
      const r = JSON.parse(c.stdout) as { databases: { database: string; steps: { name: string; status: string }[] }[] };
      assert.deepEqual(
        r.databases.map((d) => [d.database, d.steps.find((x) => x.name === 'verify')?.status]),
        [
          ['metrics', 'done'],
          ['crm', 'done'],
        ],
      );
      assert.deepEqual(await sql(target.conn('crm'), `SELECT count(*)::int AS n FROM contacts`), [{ n: 300 }]);
    } finally {
      await target.stop();
    }
  });

  it('Bucardo: cleanup of one database takes out only its sync; the shared daemon carries the other through its cutover, which, the last run out, stops it and drops the control database', async function () {
    if (!existsSync('/usr/bin/bucardo') || !existsSync('/usr/lib/postgresql/15/lib/plperl.so'))
      throw new Error('Bucardo is not installed: apt-get install -y bucardo postgresql-plperl-15');
    await databases();
    const ctl = await startServer({ major: 15, name: 'cluster-bucardo-ctl2' });
    const target = await startServer({ major: 16, name: 'cluster-bucardo2' });
    const workDir = mkdtempSync(path.join(os.tmpdir(), 'pgrelocate-test-cluster-bucardo2-'));
    try {
      const env = { ...envFor(target), PGRELOCATE_BUCARDO_URL: toUrl(ctl.conn('postgres'), { password: true }) };
      const s = await pgrelocate(['sync', '--databases', 'crm,metrics', '--strategy', 'bucardo', '--work-dir', workDir], env);
      assert.equal(s.exitCode, ExitCode.ok, s.stderr.slice(-3000));
      const c1 = await pgrelocate(['cleanup', '--databases', 'crm', '--json'], env);
      assert.equal(c1.exitCode, ExitCode.ok, c1.stderr);
      assert.match(c1.stdout, /Bucardo daemon restarted for the 1 other sync/);
      assert.deepEqual(await sql(ctl.conn('bucardo'), `SELECT count(*)::int AS n FROM bucardo.sync`), [{ n: 1 }]);
      // A second cleanup of the same database finds nothing of its own to stop, and does not wait for the daemon.
      const again = await pgrelocate(['cleanup', '--databases', 'crm'], env);
      assert.equal(again.exitCode, ExitCode.ok, again.stderr);
      assert.ok(again.seconds < 8, `second cleanup took ${again.seconds}s`);
      assert.deepEqual(await sql(withDatabase(src.conn(), 'crm'), `SELECT nspname FROM pg_namespace WHERE nspname = 'bucardo'`), []);
      // The other database is still carried by the same daemon, through its cutover; the last run out takes the daemon.
      await sql(withDatabase(src.conn(), 'metrics'), `INSERT INTO samples (id, v) VALUES (900001, 1.5)`);
      const cut = await pgrelocate(['cutover', '--databases', 'metrics', '--json'], env);
      assert.equal(cut.exitCode, ExitCode.ok, cut.stderr.slice(-3000));
      const cutReport = JSON.parse(cut.stdout) as { databases: { database: string; result: { verification: { ok: boolean } } }[] };
      assert.deepEqual(
        cutReport.databases.map((d) => [d.database, d.result.verification.ok]),
        [['metrics', true]],
      );
      assert.deepEqual(await sql(withDatabase(target.conn(), 'metrics'), `SELECT v FROM samples WHERE id = 900001`), [{ v: 1.5 }]);
      assert.deepEqual(await sql(ctl.conn('postgres'), `SELECT datname FROM pg_database WHERE datname = 'bucardo'`), []);
      assert.equal(existsSync(controlDir(workDir, ctl.conn())), false);
    } finally {
      // The source as it was for the tests after this one: no Bucardo left on it, writable.
      await pgrelocate(['cleanup', '--databases', 'crm,metrics', '--unfence'], {
        ...envFor(target),
        PGRELOCATE_BUCARDO_URL: toUrl(ctl.conn('postgres'), { password: true }),
      });
      await Promise.all([ctl.stop(), target.stop()]);
      rmSync(workDir, { recursive: true, force: true });
    }
  });

  it('sync and cutover --all-databases by Bucardo under write load: one daemon on one control database for the three runs, one cutover, each verified; the last run out stops it and drops the control database', async function () {
    if (!existsSync('/usr/bin/bucardo') || !existsSync('/usr/lib/postgresql/15/lib/plperl.so'))
      throw new Error('Bucardo is not installed: apt-get install -y bucardo postgresql-plperl-15');
    const appPassword = await databases();
    const ctl = await startServer({ major: 15, name: 'cluster-bucardo-ctl' });
    const target = await startServer({ major: 17, name: 'cluster-bucardo' });
    const workDir = mkdtempSync(path.join(os.tmpdir(), 'pgrelocate-test-cluster-bucardo-'));
    const shop = (c: ConnInfo): ConnInfo => withDatabase(c, 'shop');
    const load = new WriteLoad(shop(src.conn()), { rate: 100, workers: 2, user: { name: APP_ROLE, password: appPassword } });
    try {
      const env = {
        ...envFor(target),
        PGRELOCATE_BUCARDO_URL: toUrl(ctl.conn('postgres'), { password: true }),
      };
      const flags = ['--all-databases', '--strategy', 'bucardo', '--work-dir', workDir];
      await load.start();
      const s = await pgrelocate(['sync', ...flags, '--jobs', '2'], env);
      assert.equal(s.exitCode, ExitCode.ok, s.stderr.slice(-3000));
      // Three runs, three syncs, one daemon: the control database is Bucardo's one per server.
      const dir = controlDir(workDir, ctl.conn());
      assert.deepEqual(
        await sql(
          ctl.conn('bucardo'),
          `SELECT count(*)::int AS n, count(*) FILTER (WHERE status = 'active')::int AS active FROM bucardo.sync`,
        ),
        [{ n: 3, active: 3 }],
      );
      const mcp = (await execa('pgrep', ['-f', 'Bucardo Master Control Program'], { reject: false })).stdout
        .split('\n')
        .filter((pid) => pid && readlinkSafe(`/proc/${pid}/cwd`) === dir);
      assert.equal(mcp.length, 1, `one daemon for the three runs: ${mcp.join(',')}`);
      // Another work directory has no password for the running daemon's role: refused, the daemon untouched.
      const other = new BucardoControl(ctl.conn('postgres'), path.join(workDir, 'other'));
      await assert.rejects(
        other.ensureInstalled(),
        (e: PgrelocateError) => e.code === 'bucardo-control-in-use' && /same --work-dir/.test(e.fix),
      );
      const c = await pgrelocate(['cutover', ...flags, '--json'], env);
      assert.equal(c.exitCode, ExitCode.ok, c.stderr.slice(-3000));
      load.switchTo(shop(target.conn()));
      await new Promise((r) => setTimeout(r, 300));
      await load.stop();
      const ledger = await load.ledger.check(shop(target.conn()));
      assert.equal(ledger.ok, true, JSON.stringify(ledger).slice(0, 400));
      const report = JSON.parse(c.stdout) as {
        blackoutSeconds: number;
        databases: { database: string; result: { blackoutSeconds: number; verification: { ok: boolean } } }[];
      };
      assert.deepEqual(
        report.databases.map((d) => [d.database, d.result.verification.ok]),
        [
          ['crm', true],
          ['metrics', true],
          ['shop', true],
        ],
      );
      assert.ok(report.blackoutSeconds < 10, JSON.stringify(report).slice(0, 400));
      // The last run out took the daemon, the control database and the directory with it; nothing of Bucardo on either side.
      assert.deepEqual(await sql(ctl.conn('postgres'), `SELECT datname FROM pg_database WHERE datname = 'bucardo'`), []);
      assert.equal(existsSync(dir), false);
      for (const db of ['shop', 'crm', 'metrics'])
        for (const side of [src, target])
          assert.deepEqual(
            await sql(
              withDatabase(side.conn(), db),
              `SELECT nspname FROM pg_namespace WHERE nspname = 'bucardo' UNION ALL SELECT tgname FROM pg_trigger WHERE tgname LIKE 'bucardo%'`,
            ),
            [],
            db,
          );
      const cl = await pgrelocate(['cleanup', '--all-databases', '--unfence'], env);
      assert.equal(cl.exitCode, ExitCode.ok, cl.stderr);
    } finally {
      await load.stop();
      await Promise.all([ctl.stop(), target.stop()]);
      rmSync(workDir, { recursive: true, force: true });
    }
  });
});
