/**
 * Every failure ends: the built CLI, run as a user runs it, exits with its
 * documented code within a bound after each kind of failure — never a hang
 * with the report printed — and never prints a password.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { toUrl, type ConnInfo } from '../../engine/conn';
import { ExitCode } from '../../engine/errors';
import { freePort } from '../../engine/local/cluster';
import { loadSample } from '../../scripts/sample-db';
import { pgrelocate, type CliResult } from '../helpers/cli';
import { fingerprint, freshDatabase, hasServer, newestPgDump, server, sql } from '../helpers/servers';

const url = (c: ConnInfo): string => toUrl(c, { password: true });
const CLI = path.resolve(__dirname, '..', '..', 'scripts', 'cli.js');
/** Seconds a failing command may take: connection time-outs are 15 s; everything here fails faster. */
const BOUND = 30;

function ended(r: CliResult, code: number, secrets: readonly (string | undefined)[] = []): void {
  assert.equal(r.exitCode, code, `exit code (stderr: ${r.stderr})`);
  assert.ok(r.seconds < BOUND, `ended in ${r.seconds}s`);
  for (const s of secrets) if (s) assert.ok(!r.stdout.includes(s) && !r.stderr.includes(s), 'no password in the output');
  assert.doesNotMatch(r.stderr, /unexpected error|\n\s+at /, 'no stack trace');
}

describe('every failure ends with its exit code', function () {
  before(async function () {
    if (!hasServer(14) || !hasServer(17) || (await newestPgDump()) < 14) this.skip();
  });

  it('bad input: a URL typo (never echoing the password), option values checked before connecting, --version', async function () {
    const s = await server(17);
    const pw = s.password;
    const typo = `postgresql:/postgres:${encodeURIComponent(pw)}@127.0.0.1:${s.port}/postgres`;
    const r = await pgrelocate(['check', '--source', typo, '--target', s.url()]);
    ended(r, ExitCode.usage, [pw, encodeURIComponent(pw)]);
    assert.match(r.stderr, /two slashes/);
    for (const args of [
      ['cutover', '--max-lag', 'banana'],
      ['sync', '--jobs', '0'],
      ['copy', '--split-larger-than', 'big'],
      ['migrate', '--compress', '12'],
    ]) {
      const o = await pgrelocate([
        ...args,
        '--source',
        'postgresql://u:pw1234@127.0.0.1:1/db',
        '--target',
        'postgresql://u:pw1234@127.0.0.1:1/db',
      ]);
      ended(o, ExitCode.usage, ['pw1234']);
      assert.match(o.stderr, new RegExp(`${args[1]} must be`), args.join(' '));
    }
    const v = await pgrelocate(['--version']);
    assert.equal(v.exitCode, 0);
    assert.match(v.stdout, /^\d+\.\d+\.\d+\s*$/);
  });

  it('connection failures: wrong password (at cutover too), unreachable, no database', async function () {
    const s = await server(17);
    const target = await freshDatabase(s, 'exit_t');
    const source = await freshDatabase(await server(14), 'exit_s');
    const wrong = { ...target, password: 'not-the-password-x9' };
    for (const cmd of ['check', 'cutover', 'status', 'verify', 'cleanup']) {
      const r = await pgrelocate([cmd, '--source', url(source), '--target', url(wrong)]);
      ended(r, ExitCode.connection, ['not-the-password-x9', source.password]);
      assert.match(r.stderr, /Authentication failed for user "postgres" on the target/, cmd);
    }
    const port = await freePort();
    ended(await pgrelocate(['sync', '--source', url({ ...source, port }), '--target', url(target)]), ExitCode.connection);
    ended(await pgrelocate(['copy', '--source', url(source), '--target', url({ ...target, database: 'no_such_db' })]), ExitCode.connection);
  });

  it('refusals: only dump-restore possible (check and migrate without --strategy), a non-empty target; a verification difference', async function () {
    const source = await freshDatabase(await server(14), 'exit_nokey');
    await sql(source, `CREATE TABLE events (at timestamptz, what text); INSERT INTO events VALUES (now(), 'x')`);
    const target = await freshDatabase(await server(17), 'exit_nokey_t');
    const before = [await fingerprint(source), await fingerprint(target)];
    const c = await pgrelocate(['check', '--source', url(source), '--target', url(target)]);
    ended(c, ExitCode.checkFailed, [source.password]);
    assert.match(c.stdout, /Logical replication is not possible here/);
    assert.match(c.stdout, /events/);
    assert.match(c.stdout, /--replica-identity-full/);
    assert.match(c.stdout, /Only dump-restore remains: writes must stop for the whole run/);
    const m = await pgrelocate(['migrate', '--source', url(source), '--target', url(target)]);
    ended(m, ExitCode.checkFailed);
    assert.match(m.stderr, /pgrelocate migrate --strategy dump-restore/);
    assert.deepEqual([await fingerprint(source), await fingerprint(target)], before, 'nothing changed');
    ended(await pgrelocate(['check', '--strategy', 'dump-restore', '--source', url(source), '--target', url(target)]), ExitCode.ok);

    const done = await pgrelocate(['migrate', '--strategy', 'dump-restore', '--quiet', '--source', url(source), '--target', url(target)]);
    ended(done, ExitCode.ok);
    ended(
      await pgrelocate(['migrate', '--strategy', 'dump-restore', '--source', url(source), '--target', url(target)]),
      ExitCode.checkFailed,
    );
    await sql(target, `INSERT INTO events VALUES (now(), 'only on the target')`);
    const v = await pgrelocate(['verify', '--source', url(source), '--target', url(target)]);
    ended(v, ExitCode.verifyFailed);
    assert.match(v.stdout, /rows differ \(source 1, target 2\)/);
  });

  it('a cutover against a target made read-only ends with its error, the source unfenced and still streaming', async function () {
    const source = await freshDatabase(await server(14), 'exit_ro');
    await loadSample(source, { sizeBytes: 2e6 });
    const target = await freshDatabase(await server(17), 'exit_ro_t');
    const env = { PGRELOCATE_SOURCE_URL: url(source), PGRELOCATE_TARGET_URL: url(target) };
    ended(await pgrelocate(['sync', '--quiet', '--jobs', '2', '--replica-identity-full'], env), ExitCode.ok);
    await sql(target, `ALTER DATABASE "${target.database}" SET default_transaction_read_only = on`);
    const r = await pgrelocate(['cutover', '--quiet'], env);
    assert.notEqual(r.exitCode, ExitCode.ok);
    assert.ok(r.seconds < BOUND, `ended in ${r.seconds}s`);
    // The source stays writable.
    await sql(source, `INSERT INTO app.accounts (name) VALUES ('still-writable')`);
    await sql(target, `BEGIN READ WRITE; ALTER DATABASE "${target.database}" RESET default_transaction_read_only; COMMIT`);
    ended(await pgrelocate(['cutover', '--quiet'], env), ExitCode.ok);
    const got = await sql<{ n: string }>(target, `SELECT count(*)::text AS n FROM app.accounts WHERE name = 'still-writable'`);
    assert.equal(got[0]!.n, '1');
  });

  it('a target that cannot reach the source: sync ends naming the fix, and the source password stays out of the target server log', async function () {
    const source = await freshDatabase(await server(14), 'exit_sub');
    await sql(source, 'CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)');
    const s17 = await server(17);
    const target = await freshDatabase(s17, 'exit_sub_t');
    const logFrom = statSync(s17.logFile).size;
    const closed = { ...source, port: await freePort() };
    const env = { PGRELOCATE_SOURCE_URL: url(source), PGRELOCATE_TARGET_URL: url(target) };
    const r = await pgrelocate(['sync', '--quiet', '--source-url-from-target', url(closed)], env);
    ended(r, ExitCode.migrationFailed, [source.password]);
    assert.match(r.stderr, /The target could not subscribe to the source/);
    assert.match(r.stderr, /--source-url-from-target/);
    const log = readFileSync(s17.logFile, 'utf8').slice(logFrom);
    assert.match(log, /could not connect to the publisher/);
    assert.ok(!log.includes(source.password!), 'no password in the target server log');
    ended(await pgrelocate(['cleanup'], env), ExitCode.ok);
    const slots = await sql<{ n: string }>(
      source,
      `SELECT count(*)::text AS n FROM pg_replication_slots WHERE database = current_database()`,
    );
    assert.equal(slots[0]!.n, '0');
  });

  it('pgrelocate killed during pg_restore: the restore ends with it, and its passfile is swept at the next start', async function () {
    const source = await freshDatabase(await server(14), 'exit_kill');
    await loadSample(source, { sizeBytes: 40e6 });
    const target = await freshDatabase(await server(17), 'exit_kill_t');
    // Its own work directory: a killed run cannot remove its dump, the test does.
    const workDir = mkdtempSync(path.join(os.tmpdir(), 'pgrelocate-test-kill-'));
    try {
      const cli = execa(process.execPath, [CLI, 'migrate', '--strategy', 'dump-restore', '--jobs', '2', '--quiet', '--work-dir', workDir], {
        reject: false,
        env: { PGRELOCATE_SOURCE_URL: url(source), PGRELOCATE_TARGET_URL: url(target) },
      });
      // The main restore pass (pg_restore -j): the listing and the schemas' pass before it are short.
      const mainRestore = async (): Promise<number | undefined> => {
        const r = await execa('ps', ['-o', 'pid=,args=', '--ppid', String(cli.pid)], { reject: false });
        const line = String(r.stdout)
          .split('\n')
          .find((l) => /\/pg_restore .*-j /.test(l));
        return line ? Number(line.trim().split(/\s+/)[0]) : undefined;
      };
      let restore: number | undefined;
      for (const deadline = Date.now() + 120_000; !restore && Date.now() < deadline;) {
        restore = await mainRestore();
        if (!restore) await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(restore, 'pg_restore started');
      const passDirs = (): string[] => readdirSync(os.tmpdir()).filter((d) => d.startsWith(`pgrelocate-pass-${cli.pid}-`));
      cli.kill('SIGKILL');
      await cli;
      // Gone, or a zombie waiting for a reaper that this machine's pid 1 may not be.
      const gone = async (pid: number): Promise<boolean> => {
        try {
          return / Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\)/, ')'));
        } catch {
          return true;
        }
      };
      for (const deadline = Date.now() + 10_000; !(await gone(restore!)) && Date.now() < deadline;)
        await new Promise((r) => setTimeout(r, 100));
      assert.ok(await gone(restore!), 'pg_restore ended with pgrelocate');
      assert.ok(passDirs().length > 0, 'SIGKILL left the passfile');
      ended(await pgrelocate(['--version']), ExitCode.ok);
      assert.deepEqual(passDirs(), [], 'swept at the next start');
    } finally {
      rmSync(workDir, { recursive: true, force: true });
    }
  });
});
