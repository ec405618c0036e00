/**
 * Migrations as managed-service users run them: RDS-like servers (master user
 * in rds_superuser, bootstrap superuser rdsadmin, application roles owning
 * tables), TLS only, scram, plain URLs — never as a superuser. Each ends in a
 * comparison of every table, sequence and large object, and a check that
 * nothing of pgrelocate's is left.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { openClient, toUrl, type ConnInfo } from '../../engine/conn';
import { ExitCode } from '../../engine/errors';
import { startServer, type LocalServer } from '../../engine/local/cluster';
import { startProfiledServer, type ProfiledServer } from '../../engine/local/profiles';
import { APP_ROLE, dropGeneratedColumns, loadSample } from '../../scripts/sample-db';
import { WriteLoad } from '../../scripts/write-load';
import { pgrelocate } from '../helpers/cli';
import { hasServer, newestPgDump, sql } from '../helpers/servers';
import { assertUncarried, prepareUncarried, uncarriedHook, type UncarriedReport } from '../helpers/uncarried';

const url = (c: ConnInfo): string => toUrl(c, { password: true });

/** pgrelocate's artefacts on either side, read as the bootstrap superuser. */
async function leftovers(src: ProfiledServer, dst: ProfiledServer, source: ConnInfo, target: ConnInfo): Promise<string[]> {
  const admin = (p: ProfiledServer, c: ConnInfo): ConnInfo => p.admin(c.database);
  const slots = await sql<{ n: string }>(
    admin(src, source),
    `SELECT slot_name AS n FROM pg_replication_slots WHERE slot_name LIKE 'pgrelocate%'`,
  );
  const pubs = await sql<{ n: string }>(admin(src, source), `SELECT pubname AS n FROM pg_publication WHERE pubname LIKE 'pgrelocate%'`);
  const subs = await sql<{ n: string }>(admin(dst, target), `SELECT subname AS n FROM pg_subscription WHERE subname LIKE 'pgrelocate%'`);
  const full = await sql<{ n: string }>(
    admin(src, source),
    `SELECT relname AS n FROM pg_class WHERE relreplident = 'f' AND relkind = 'r' AND relnamespace::regnamespace::text <> 'pg_catalog'`,
  );
  const state = await sql<{ n: string }>(admin(dst, target), `SELECT nspname AS n FROM pg_namespace WHERE nspname = 'pgrelocate'`);
  return [
    ...slots.map((r) => `slot ${r.n}`),
    ...pubs.map((r) => `publication ${r.n}`),
    ...subs.map((r) => `subscription ${r.n}`),
    ...full.map((r) => `replica identity full ${r.n}`),
    ...state.map(() => 'schema pgrelocate'),
  ];
}

/**
 * The sample database on an RDS-like source, loaded as the master user, with
 * some tables handed to an application role the master is a member of.
 */
async function rdsSource(src: ProfiledServer, name: string): Promise<{ conn: ConnInfo; appPassword: string }> {
  const conn = await src.createDatabase(name);
  // RDS lets rds_superuser create these; a local 12 knows no trusted extensions, so the bootstrap superuser does.
  await sql(src.admin(name), 'CREATE EXTENSION IF NOT EXISTS citext; CREATE EXTENSION IF NOT EXISTS pgcrypto');
  const sample = await loadSample(conn, { sizeBytes: 4e6 });
  await sql(
    conn,
    `DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_owner') THEN CREATE ROLE app_owner NOLOGIN; END IF; END $$;
     GRANT app_owner TO current_user;
     GRANT USAGE, CREATE ON SCHEMA app TO app_owner;
     ALTER TABLE app.products OWNER TO app_owner;
     ALTER TABLE app.accounts OWNER TO app_owner;`,
  );
  return { conn, appPassword: sample.appPassword };
}

/** The owners rdsSource gave: two tables the application role's, the rest the master's. */
async function assertOwnersAsOnSource(target: ConnInfo): Promise<void> {
  const owners = await sql<{ t: string; o: string }>(
    target,
    `SELECT c.relname AS t, pg_get_userbyid(c.relowner) AS o FROM pg_class c WHERE c.relnamespace = 'app'::regnamespace AND c.relname IN ('products', 'accounts', 'orders') ORDER BY 1`,
  );
  assert.deepEqual(owners, [
    { t: 'accounts', o: 'app_owner' },
    { t: 'orders', o: 'master' },
    { t: 'products', o: 'app_owner' },
  ]);
}

describe('managed-service users: RDS-like servers, TLS, no superuser', function () {
  let src12: ProfiledServer;
  let dst17: ProfiledServer;
  before(async function () {
    if (!hasServer(12) || !hasServer(17) || (await newestPgDump()) < 12) this.skip();
    [src12, dst17] = await Promise.all([
      startProfiledServer('rds', 12, { source: true, name: 'rds12' }),
      startProfiledServer('rds', 17, { name: 'rds17' }),
    ]);
  });
  after(async function () {
    await Promise.all([src12?.server.stop(), dst17?.server.stop()]);
  });

  it('RDS 12 → RDS 17, logical: sync under write load, cutover, ledger, every table verified, nothing left', async function () {
    const { conn: source, appPassword } = await rdsSource(src12, 'shop');
    const target = await dst17.createDatabase('shop');
    // Unlogged tables and large objects written between the pre-copy and the fence; the master may not read pg_largeobject.
    await prepareUncarried(source);
    const env = { PGRELOCATE_SOURCE_URL: url(source), PGRELOCATE_TARGET_URL: url(target) };
    const load = new WriteLoad(source, { rate: 100, workers: 2, user: { name: APP_ROLE, password: appPassword } });
    await load.start();
    try {
      const s = await pgrelocate(['sync', '--jobs', '2', '--replica-identity-full'], env);
      assert.equal(s.exitCode, ExitCode.ok, s.stderr);
      // RDS hides password hashes: the roles arrived without them, and the user sets them before the switch (sync warned).
      assert.match(s.stderr + s.stdout, /does not expose role passwords/);
      await sql(target, `ALTER ROLE ${APP_ROLE} PASSWORD '${appPassword}'`);
      await new Promise((r) => setTimeout(r, 1000));
      // A session the master may not end (the service's own superuser): kept, and its writes are refused by the fence all the same.
      const held = await openClient(src12.admin(source.database));
      let c: Awaited<ReturnType<typeof pgrelocate>>;
      try {
        c = await pgrelocate(['cutover', '--verify', 'checksum', '--json', '--pre-hook', uncarriedHook(source)], env);
        assert.equal(c.exitCode, ExitCode.ok, c.stderr);
        assert.equal((JSON.parse(c.stdout) as { keptSessions: number }).keptSessions, 1);
        await assert.rejects(
          held.query(`INSERT INTO public.schema_migrations (version) VALUES ('superuser, after the switch')`),
          /cannot write to public\.schema_migrations: this database was moved by pgrelocate/,
        );
      } finally {
        await held.end();
      }
      load.switchTo(target);
      await new Promise((r) => setTimeout(r, 500));
      await load.stop();
      const ledger = await load.ledger.check(target);
      assert.equal(ledger.ok, true, JSON.stringify(ledger).slice(0, 400));
      const report = JSON.parse(c.stdout) as { blackoutSeconds: number; verification: { ok: boolean; mismatches: string[] } };
      assert.ok(report.blackoutSeconds < 5, `blackout ${report.blackoutSeconds}s`);
      assert.equal(report.verification.ok, true, report.verification.mismatches.join('\n'));
      await assertUncarried(source, target, JSON.parse(c.stdout) as UncarriedReport);
      const cl = await pgrelocate(['cleanup'], env);
      assert.equal(cl.exitCode, ExitCode.ok, cl.stderr);
      assert.deepEqual(await leftovers(src12, dst17, source, target), []);
      // Ownership as on the source; the application role can use its tables on the target.
      await assertOwnersAsOnSource(target);
      await sql({ ...target, user: APP_ROLE, password: appPassword }, `INSERT INTO app.accounts (name) VALUES ('after cutover')`);
    } finally {
      await load.stop();
    }
  });

  it('RDS 12 → RDS 17, dump-restore: owners and grants as on the source, the application role uses its tables, nothing left', async function () {
    const { conn: source, appPassword } = await rdsSource(src12, 'shop_dr');
    const target = await dst17.createDatabase('shop_dr');
    const env = { PGRELOCATE_SOURCE_URL: url(source), PGRELOCATE_TARGET_URL: url(target) };
    const m = await pgrelocate(['migrate', '--strategy', 'dump-restore', '--jobs', '2', '--verify', 'checksum', '--json'], env);
    assert.equal(m.exitCode, ExitCode.ok, m.stderr + m.stdout.slice(0, 2000));
    await assertOwnersAsOnSource(target);
    await sql(target, `ALTER ROLE ${APP_ROLE} PASSWORD '${appPassword}'`);
    const app = { ...target, user: APP_ROLE, password: appPassword };
    await sql(app, `INSERT INTO app.accounts (name) VALUES ('app writes'); UPDATE app.products SET title = title WHERE id = 1`);
    const cl = await pgrelocate(['cleanup'], env);
    assert.equal(cl.exitCode, ExitCode.ok, cl.stderr);
    assert.deepEqual(await leftovers(src12, dst17, source, target), []);

    // --no-owner: everything is the master's, and the former owners keep the use of what they owned.
    const plain = await dst17.createDatabase('shop_noowner');
    const n = await pgrelocate(['migrate', '--strategy', 'dump-restore', '--jobs', '2', '--no-owner', '--quiet'], {
      ...env,
      PGRELOCATE_TARGET_URL: url(plain),
    });
    assert.equal(n.exitCode, ExitCode.ok, n.stderr);
    const [own] = await sql<{ o: string }>(
      plain,
      `SELECT pg_get_userbyid(relowner) AS o FROM pg_class WHERE oid = 'app.accounts'::regclass`,
    );
    assert.equal(own!.o, 'master');
    await sql(
      plain,
      `SET ROLE app_owner; INSERT INTO app.accounts (name) VALUES ('former owner writes'); UPDATE app.products SET title = title WHERE id = 1`,
    );
  });

  it('a source table owned by a role the master cannot act as: check refuses before anything changes, naming the GRANT', async function () {
    const source = await src12.createDatabase('owned');
    await sql(source, 'CREATE TABLE mine (id int PRIMARY KEY)');
    await sql(
      src12.admin('owned'),
      `CREATE ROLE outsider NOLOGIN; CREATE TABLE theirs (id int PRIMARY KEY); ALTER TABLE theirs OWNER TO outsider; GRANT SELECT ON theirs TO master`,
    );
    const target = await dst17.createDatabase('owned');
    const env = { PGRELOCATE_SOURCE_URL: url(source), PGRELOCATE_TARGET_URL: url(target) };
    const c = await pgrelocate(['check', '--strategy', 'logical'], env);
    assert.equal(c.exitCode, ExitCode.checkFailed, c.stdout);
    assert.match(c.stdout, /does not own 1 source tables and is no member of their owners \(outsider\): "public"."theirs"/);
    assert.match(c.stdout, /GRANT "outsider" TO "master"/);
    // The fix as printed, run by the master (RDS ≤ 15: CREATEROLE may grant it).
    await sql(source, 'GRANT "outsider" TO "master"');
    const ok = await pgrelocate(['check', '--strategy', 'logical'], env);
    assert.equal(ok.exitCode, ExitCode.ok, ok.stdout);
  });
});

/** Live Bucardo daemons (MCP, VAC, controllers, kids) on this machine, by their process titles. */
function bucardoProcesses(): string[] {
  const out: string[] = [];
  for (const e of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const title = readFileSync(`/proc/${e}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      if (/^Bucardo /.test(title)) out.push(`${e} ${title}`);
    } catch {
      // gone
    }
  }
  return out;
}

describe('managed-service users: Heroku-like source (no replication, no CREATEROLE) → RDS-like 17', function () {
  let heroku: ProfiledServer;
  let rds: ProfiledServer;
  let ctl: LocalServer;
  before(async function () {
    if (!existsSync('/usr/bin/bucardo') || !existsSync('/usr/lib/postgresql/15/lib/plperl.so'))
      throw new Error('Bucardo is not installed: apt-get install -y bucardo postgresql-plperl-15');
    if (!hasServer(14) || !hasServer(17) || (await newestPgDump()) < 14) this.skip();
    [heroku, rds, ctl] = await Promise.all([
      startProfiledServer('heroku', 14, { name: 'heroku14' }),
      startProfiledServer('rds', 17, { name: 'rds17h' }),
      startServer({ major: 15, name: 'heroku-bucardo-ctl' }),
    ]);
  });
  after(async function () {
    await Promise.all([heroku?.server.stop(), rds?.server.stop(), ctl?.stop()]);
  });

  /** The sample as the Heroku user loads it: the service made the extra roles (the user may not create roles). */
  async function herokuSource(name: string): Promise<ConnInfo> {
    const conn = await heroku.createDatabase(name);
    await sql(
      heroku.admin(),
      `DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${APP_ROLE}') THEN
         CREATE ROLE ${APP_ROLE} LOGIN; CREATE ROLE pgrelocate_readonly NOLOGIN; END IF; END $$`,
    );
    await loadSample(conn, { sizeBytes: 3e6 });
    return conn;
  }

  it('plan picks bucardo; sync and cutover under the owner’s own write load; verified; nothing of Bucardo or pgrelocate left', async function () {
    const source = await herokuSource('hshop');
    const target = await rds.createDatabase('hshop');
    const env = { PGRELOCATE_SOURCE_URL: url(source), PGRELOCATE_TARGET_URL: url(target), PGRELOCATE_BUCARDO_URL: url(ctl.conn()) };
    const p = await pgrelocate(['plan', '--json'], env);
    assert.equal((JSON.parse(p.stdout) as { strategy: string }).strategy, 'bucardo', p.stdout);
    // On Heroku the application connects as the database's owner: the load does too.
    const load = new WriteLoad(source, { rate: 80, workers: 2 });
    await load.start();
    try {
      const s = await pgrelocate(['sync', '--jobs', '2', '--quiet'], env);
      assert.equal(s.exitCode, ExitCode.ok, s.stderr);
      await new Promise((r) => setTimeout(r, 1000));
      const c = await pgrelocate(['cutover', '--verify', 'checksum', '--json'], env);
      assert.equal(c.exitCode, ExitCode.ok, c.stderr);
      const report = JSON.parse(c.stdout) as { blackoutSeconds: number; verification: { ok: boolean; mismatches: string[] } };
      assert.equal(report.verification.ok, true, report.verification.mismatches.join('\n'));
      load.switchTo({ ...target });
      await load.stop();
      const ledger = await load.ledger.check(target);
      assert.equal(ledger.ok, true, JSON.stringify(ledger).slice(0, 400));
      const cl = await pgrelocate(['cleanup'], env);
      assert.equal(cl.exitCode, ExitCode.ok, cl.stderr);
      const bucardo = await sql<{ n: string }>(
        heroku.admin('hshop'),
        `SELECT 'schema ' || nspname AS n FROM pg_namespace WHERE nspname = 'bucardo'
         UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE 'bucardo%'`,
      );
      assert.deepEqual(bucardo, []);
      assert.deepEqual(bucardoProcesses(), [], 'no Bucardo process outlives the run (its VAC did)');
      const state = await sql<{ n: string }>(rds.admin('hshop'), `SELECT nspname AS n FROM pg_namespace WHERE nspname = 'pgrelocate'`);
      assert.deepEqual(state, []);
    } finally {
      await load.stop();
    }
  });

  it('dump-restore from the Heroku user to the RDS master, verified by checksum', async function () {
    const source = await herokuSource('hshop_dr');
    const target = await rds.createDatabase('hshop_dr');
    const m = await pgrelocate(['migrate', '--strategy', 'dump-restore', '--jobs', '2', '--verify', 'checksum', '--json'], {
      PGRELOCATE_SOURCE_URL: url(source),
      PGRELOCATE_TARGET_URL: url(target),
    });
    assert.equal(m.exitCode, ExitCode.ok, m.stderr + m.stdout.slice(0, 2000));
  });

  it('a login role whose own read-only setting would override the fence, which the owner may not change: check refuses before anything changes', async function () {
    const source = await heroku.createDatabase('hfence');
    await sql(source, 'CREATE TABLE t (id int PRIMARY KEY)');
    await sql(heroku.admin(), `CREATE ROLE reporter LOGIN; ALTER ROLE reporter SET default_transaction_read_only = off`);
    const target = await rds.createDatabase('hfence');
    const env = { PGRELOCATE_SOURCE_URL: url(source), PGRELOCATE_TARGET_URL: url(target), PGRELOCATE_BUCARDO_URL: url(ctl.conn()) };
    const c = await pgrelocate(['check', '--strategy', 'bucardo'], env);
    assert.equal(c.exitCode, ExitCode.checkFailed, c.stdout);
    assert.match(c.stdout, /Login roles reporter set default_transaction_read_only themselves/);
    // The fix as printed, by the service's superuser.
    const fix = /fix: As a role that may \(a superuser\): (.*)$/m.exec(c.stdout)?.[1];
    assert.ok(fix, c.stdout);
    await sql(heroku.admin('hfence'), fix);
    const ok = await pgrelocate(['check', '--strategy', 'bucardo'], env);
    assert.equal(ok.exitCode, ExitCode.ok, ok.stdout);
  });
});

describe('managed-service users: pglogical between RDS-like 15 servers', function () {
  let src: ProfiledServer;
  let dst: ProfiledServer;
  before(async function () {
    if (!existsSync('/usr/lib/postgresql/15/lib/pglogical.so') || !hasServer(15) || (await newestPgDump()) < 15) this.skip();
    // What a parameter group sets: pglogical preloaded, and (Debian's 15 has the allow-list) its output plugin allowed.
    const settings = {
      shared_preload_libraries: 'pglogical',
      max_worker_processes: 16,
      output_plugin_libraries: 'pgoutput, test_decoding, pglogical_output',
    };
    [src, dst] = await Promise.all([
      startProfiledServer('rds', 15, { source: true, name: 'rdspgl-src', settings }),
      startProfiledServer('rds', 15, { name: 'rdspgl-dst', settings }),
    ]);
  });
  after(async function () {
    await Promise.all([src?.server.stop(), dst?.server.stop()]);
  });

  /**
   * RDS's build of pglogical works as rds_superuser; a local one needs a superuser, so the bootstrap
   * superuser creates the extension and grants rds_superuser what pglogical's nodes and apply use
   * (its tables, the replication-origin functions). An emulation: RDS's internals are not visible here.
   */
  async function withPglogical(p: ProfiledServer, database: string): Promise<void> {
    const origins = [
      'create(text)',
      'drop(text)',
      'oid(text)',
      'session_setup(text)',
      'session_reset()',
      'xact_setup(pg_lsn, timestamp with time zone)',
      'xact_reset()',
      'advance(text, pg_lsn)',
      'progress(text, boolean)',
      'session_progress(boolean)',
      'session_is_setup()',
    ];
    await sql(
      p.admin(database),
      `CREATE EXTENSION IF NOT EXISTS pglogical; GRANT USAGE ON SCHEMA pglogical TO rds_superuser;
       GRANT ALL ON ALL TABLES IN SCHEMA pglogical TO rds_superuser; GRANT ALL ON ALL SEQUENCES IN SCHEMA pglogical TO rds_superuser;
       ${origins.map((f) => `GRANT EXECUTE ON FUNCTION pg_replication_origin_${f} TO rds_superuser;`).join('\n')}`,
    );
  }

  it('RDS 15 → RDS 15 by pglogical as the master: sync, cutover under write load, ledger, verified', async function () {
    const source = await src.createDatabase('pshop');
    await withPglogical(src, 'pshop');
    const sample = await loadSample(source, { sizeBytes: 3e6 });
    await dropGeneratedColumns(source);
    const target = await dst.createDatabase('pshop');
    await withPglogical(dst, 'pshop');
    const env = { PGRELOCATE_SOURCE_URL: url(source), PGRELOCATE_TARGET_URL: url(target) };
    const load = new WriteLoad(source, { rate: 80, workers: 2, user: { name: APP_ROLE, password: sample.appPassword } });
    await load.start();
    try {
      const s = await pgrelocate(['sync', '--strategy', 'pglogical', '--jobs', '2', '--quiet'], env);
      assert.equal(s.exitCode, ExitCode.ok, `${s.stderr}\ntarget log:\n${dst.server.logTail(20)}\nsource log:\n${src.server.logTail(10)}`);
      await sql(target, `ALTER ROLE ${APP_ROLE} PASSWORD '${sample.appPassword}'`);
      const c = await pgrelocate(['cutover', '--verify', 'checksum', '--json'], env);
      assert.equal(c.exitCode, ExitCode.ok, c.stderr);
      const report = JSON.parse(c.stdout) as { blackoutSeconds: number; verification: { ok: boolean; mismatches: string[] } };
      assert.equal(report.verification.ok, true, report.verification.mismatches.join('\n'));
      load.switchTo(target);
      await load.stop();
      const ledger = await load.ledger.check(target);
      assert.equal(ledger.ok, true, JSON.stringify(ledger).slice(0, 400));
      const cl = await pgrelocate(['cleanup'], env);
      assert.equal(cl.exitCode, ExitCode.ok, cl.stderr);
      const slots = await sql<{ n: string }>(src.admin('pshop'), `SELECT count(*)::text AS n FROM pg_replication_slots`);
      assert.equal(slots[0]!.n, '0');
    } finally {
      await load.stop();
    }
  });
});
