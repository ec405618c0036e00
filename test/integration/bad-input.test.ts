/**
 * Bad input: each case is a clear error that names the fix, a documented exit
 * code, no password in any output, and nothing changed on either side.
 */
import assert from 'node:assert/strict';
import { toUrl, type ConnInfo } from '../../engine/conn';
import { ExitCode } from '../../engine/errors';
import { freePort } from '../../engine/local/cluster';
import { pgrelocate, type CliResult } from '../helpers/cli';
import { fingerprint, freshDatabase, hasServer, newestPgDump, sampleSource, server, sql } from '../helpers/servers';

const url = (c: ConnInfo): string => toUrl(c, { password: true });

async function migrateCli(source: ConnInfo, target: ConnInfo, extra: string[] = []): Promise<CliResult> {
  return pgrelocate(['migrate', '--source', url(source), '--target', url(target), '--jobs', '2', ...extra]);
}

/** Run a failing migrate and prove neither side changed. */
async function expectUnchanged(source: ConnInfo, target: ConnInfo, run: () => Promise<CliResult>): Promise<CliResult> {
  const before = [await fingerprint(source), await fingerprint(target)];
  const r = await run();
  assert.deepEqual([await fingerprint(source), await fingerprint(target)], before, 'nothing changed on either side');
  for (const pw of [source.password, target.password]) {
    if (pw) assert.ok(!r.stdout.includes(pw) && !r.stderr.includes(pw), 'no password in the output');
  }
  return r;
}

describe('bad input is refused clearly and changes nothing', function () {
  before(function () {
    if (!hasServer(12) || !hasServer(17)) this.skip();
  });

  it('wrong password', async function () {
    const { conn: source } = await sampleSource(12);
    const target = await freshDatabase(await server(17), 'badpw');
    const wrong = { ...target, password: 'not-the-password-x9' };
    const r = await expectUnchanged(source, target, () => migrateCli(source, wrong));
    assert.equal(r.exitCode, ExitCode.connection);
    assert.match(r.stderr, /Authentication failed for user "postgres" on the target/);
    assert.match(r.stderr, /fix: Check the user and password/);
    assert.ok(!r.stderr.includes('not-the-password-x9'));
  });

  it('unreachable host', async function () {
    const { conn: source } = await sampleSource(12);
    const port = await freePort(); // nothing listens there
    const r = await migrateCli(source, { ...source, port });
    assert.equal(r.exitCode, ExitCode.connection);
    assert.match(r.stderr, /Cannot reach the target/);
    assert.match(r.stderr, /fix: Check host and port/);
  });

  it('database that does not exist', async function () {
    const { conn: source } = await sampleSource(12);
    const s17 = await server(17);
    const r = await migrateCli(source, s17.conn('no_such_db'));
    assert.equal(r.exitCode, ExitCode.connection);
    assert.match(r.stderr, /Database "no_such_db" does not exist on the target/);
    assert.match(r.stderr, /CREATE DATABASE "no_such_db"/);
  });

  it('non-empty target without --force', async function () {
    const { conn: source } = await sampleSource(12);
    const target = await freshDatabase(await server(17), 'busy');
    await sql(target, 'CREATE TABLE precious (id int PRIMARY KEY); INSERT INTO precious VALUES (1)');
    const r = await expectUnchanged(source, target, () => migrateCli(source, target));
    assert.equal(r.exitCode, ExitCode.checkFailed);
    assert.match(r.stderr, /is not empty/);
    assert.match(r.stderr, /--force/);
    assert.deepEqual(await sql(target, 'SELECT id FROM precious'), [{ id: 1 }]);
  });

  it('a read-only source (as a cutover leaves it) for a streaming sync, and a read-only target', async function () {
    const source = await freshDatabase(await server(12), 'fenced');
    await sql(source, 'CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)');
    const db = source.database;
    await sql(source, `ALTER DATABASE "${db}" SET default_transaction_read_only = on`);
    const target = await freshDatabase(await server(17), 'fresh');
    const r = await expectUnchanged(source, target, () =>
      pgrelocate(['sync', '--strategy', 'logical', '--source', url(source), '--target', url(target), '--jobs', '2']),
    );
    assert.equal(r.exitCode, ExitCode.checkFailed, r.stderr);
    assert.match(r.stderr, new RegExp(`source database ${db} is read-only`));
    assert.match(r.stderr, new RegExp(`ALTER DATABASE "${db}" RESET default_transaction_read_only`));
    // A read-only target is refused whatever the strategy.
    await sql(target, `ALTER DATABASE "${target.database}" SET default_transaction_read_only = on`);
    await sql(source, `BEGIN READ WRITE; ALTER DATABASE "${db}" RESET default_transaction_read_only; COMMIT`);
    const t = await expectUnchanged(source, target, () => migrateCli(source, target));
    assert.equal(t.exitCode, ExitCode.checkFailed, t.stderr);
    assert.match(t.stderr, /target database .* is read-only/);
  });

  it('target major older than the source', async function () {
    const { conn: target } = { conn: await freshDatabase(await server(12), 'older') };
    const source = await freshDatabase(await server(17), 'newer');
    await sql(source, 'CREATE TABLE t (id int PRIMARY KEY)');
    const r = await expectUnchanged(source, target, () => migrateCli(source, target));
    assert.equal(r.exitCode, ExitCode.checkFailed);
    assert.match(r.stderr, /target runs PostgreSQL 12, older than the source's 17/);
    assert.match(r.stderr, /Create the target with PostgreSQL 17 or newer/);
  });

  it('a pg_dump older than the source', async function () {
    const pgDump = await newestPgDump();
    const newer = [16, 17, 18].find((m) => m > pgDump && hasServer(m));
    if (!newer || !hasServer(17)) this.skip();
    const source = await freshDatabase(await server(newer!), 'toonew');
    await sql(source, 'CREATE TABLE t (id int PRIMARY KEY)');
    const target = await freshDatabase(await server(Math.max(17, newer!)), 'toonew_target');
    const r = await expectUnchanged(source, target, () => migrateCli(source, target));
    assert.equal(r.exitCode, ExitCode.checkFailed);
    assert.match(r.stderr, new RegExp(`older than the source server \\(PostgreSQL ${newer}\\)`));
    assert.match(r.stderr, new RegExp(`postgresql-client-${newer}`));
    assert.match(r.stderr, /PGRELOCATE_PG_BINDIR/);
  });

  it('a URL that is not a postgres URL, and a missing target', async function () {
    const r = await pgrelocate(['check', '--source', 'mysql://u:secretpw@h/db', '--target', 'postgresql://x@127.0.0.1:1/db']);
    assert.equal(r.exitCode, ExitCode.usage);
    assert.match(r.stderr, /must start with postgresql:\/\//);
    const m = await pgrelocate(['migrate', '--source', 'postgresql://x@127.0.0.1:1/db']);
    assert.equal(m.exitCode, ExitCode.usage);
    assert.match(m.stderr, /No target given/);
    const bad = await pgrelocate(['migrate', '--jobs', 'many']);
    assert.equal(bad.exitCode, ExitCode.usage);
  });

  it('row-level security that would hide source rows, and sequences the migration role cannot read, are refused with their fixes', async function () {
    const s = await server(14);
    const source = await freshDatabase(s, 'rls');
    const role = `rls_reader_${Date.now() % 100000}`;
    await sql(
      source,
      `CREATE TABLE notes (id int PRIMARY KEY, owner text); INSERT INTO notes SELECT i, 'u' || i % 3 FROM generate_series(1, 30) i;
       ALTER TABLE notes ENABLE ROW LEVEL SECURITY; CREATE POLICY mine ON notes USING (owner = current_user);
       CREATE SEQUENCE counter; SELECT nextval('counter');
       CREATE ROLE ${role} LOGIN PASSWORD 'rls-pw-123'; GRANT SELECT ON notes TO ${role};`,
    );
    const asReader = { ...source, user: role, password: 'rls-pw-123' };
    const target = await freshDatabase(await server(17), 'rlstgt');
    const findings = async (): Promise<{ code: string; message: string; fix?: string }[]> => {
      const r = await pgrelocate(['check', '--source', url(asReader), '--target', url(target), '--strategy', 'dump-restore', '--json']);
      return (JSON.parse(r.stdout) as { findings: { code: string; message: string; fix?: string }[] }).findings;
    };
    const before = [await fingerprint(source), await fingerprint(target)];
    const rls = (await findings()).find((f) => f.code === 'source-rls');
    assert.ok(rls, 'the RLS finding');
    assert.match(rls.message, /"public"."notes"/);
    assert.match(rls.fix ?? '', new RegExp(`ALTER ROLE "${role}" BYPASSRLS`));
    const seq = (await findings()).find((f) => f.code === 'source-unreadable-sequences');
    assert.match(seq?.message ?? '', /"public"."counter"/, 'a sequence the role cannot read is named too');
    assert.deepEqual([await fingerprint(source), await fingerprint(target)], before);
    await sql(s.conn(), `ALTER ROLE ${role} BYPASSRLS`);
    await sql(source, `GRANT SELECT ON SEQUENCE counter TO ${role}`);
    const after = await findings();
    assert.ok(!after.some((f) => f.code === 'source-rls'), 'gone once the role bypasses RLS');
    assert.ok(!after.some((f) => f.code === 'source-unreadable-sequences'), 'gone once the sequence is granted');
  });

  it('check reports the same findings without changing anything', async function () {
    const { conn: source } = await sampleSource(12);
    const target = await freshDatabase(await server(17), 'checkonly');
    const before = [await fingerprint(source), await fingerprint(target)];
    // The sample has key-less tables: without --strategy, "only dump-restore is possible" fails the check (issue 12).
    const r = await pgrelocate(['check', '--source', url(source), '--target', url(target), '--json']);
    const out = JSON.parse(r.stdout) as { ok: boolean; onlyDumpRestore: boolean; findings: { level: string; code: string }[] };
    assert.equal(r.exitCode, ExitCode.checkFailed);
    assert.equal(out.onlyDumpRestore, true);
    const d = await pgrelocate(['check', '--strategy', 'dump-restore', '--source', url(source), '--target', url(target), '--json']);
    assert.equal(d.exitCode, (await newestPgDump()) >= 12 ? ExitCode.ok : ExitCode.checkFailed);
    assert.ok((JSON.parse(d.stdout) as typeof out).findings.some((f) => f.code === 'large-objects'));
    assert.deepEqual([await fingerprint(source), await fingerprint(target)], before);
  });
});
