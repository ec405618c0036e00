/**
 * Connection strings as libpq reads them, through the CLI: a plain URL means
 * sslmode=prefer on every connection pgrelocate opens (sessions, the replication
 * connection of the snapshot, pg_dump/pg_restore, the subscription), the
 * verify modes check the certificate, and a URL without a password takes it
 * from PGPASSWORD or the passfile. Only the test of `disable` names that mode.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect, toUrl, type ConnInfo } from '../../engine/conn';
import { ExitCode } from '../../engine/errors';
import { startServer, type LocalServer } from '../../engine/local/cluster';
import { loadSample } from '../../scripts/sample-db';
import { pgrelocate } from '../helpers/cli';
import { freshDatabase, hasServer, newestPgDump, server, sql } from '../helpers/servers';

const url = (c: ConnInfo, query = ''): string => toUrl(c, { password: true }) + query;

/** Whether pgrelocate's sessions on a server use TLS, by application name (walsenders included). */
async function tlsByApplication(admin: ConnInfo): Promise<Record<string, boolean>> {
  const rows = await sql<{ a: string; ssl: boolean }>(
    admin,
    `SELECT a.application_name AS a, bool_and(s.ssl) AS ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
      WHERE a.application_name LIKE 'pgrelocate%' GROUP BY 1`,
  );
  return Object.fromEntries(rows.map((r) => [r.a, r.ssl]));
}

describe('connection strings as libpq reads them (TLS, PGPASSWORD, passfile)', function () {
  let plain: LocalServer;
  before(async function () {
    if (!hasServer(14) || !hasServer(17) || (await newestPgDump()) < 14) this.skip();
    plain = await startServer({ major: 14, name: 'notls', ssl: false });
  });
  after(async function () {
    await plain?.stop();
  });

  it('a plain URL to a server without TLS: check, sync (replication connection, pg_dump, subscription) and cutover fall back to plain TCP; require is refused', async function () {
    const source = plain.conn('tls_src');
    await sql(plain.conn(), 'CREATE DATABASE tls_src');
    await loadSample(source, { sizeBytes: 3e6 });
    const target = await freshDatabase(await server(17), 'tls_tgt');
    const env = { PGRELOCATE_SOURCE_URL: url(source), PGRELOCATE_TARGET_URL: url(target) };
    assert.doesNotMatch(env.PGRELOCATE_SOURCE_URL, /sslmode/);

    const s = await pgrelocate(['sync', '--jobs', '2', '--quiet', '--replica-identity-full'], env);
    assert.equal(s.exitCode, 0, s.stderr);
    // The target's subscription reaches the source over plain TCP; the target's own sessions over TLS.
    const onSource = await sql<{ n: string }>(
      source,
      `SELECT count(*)::text AS n FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.application_name = 'pgrelocate-subscription' AND NOT s.ssl`,
    );
    assert.equal(onSource[0]!.n, '1', 'the subscription streams from the TLS-less source');
    await sql(source, `INSERT INTO app.accounts (name) VALUES ('after-sync')`);
    const c = await pgrelocate(['cutover', '--quiet'], env);
    assert.equal(c.exitCode, 0, c.stderr);
    const got = await sql<{ n: string }>(target, `SELECT count(*)::text AS n FROM app.accounts WHERE name = 'after-sync'`);
    assert.equal(got[0]!.n, '1');
    const slots = await sql<{ n: string }>(source, `SELECT count(*)::text AS n FROM pg_replication_slots`);
    assert.equal(slots[0]!.n, '0');

    const req = await pgrelocate(['check', '--source', url(source, '?sslmode=require'), '--target', url(target)]);
    assert.equal(req.exitCode, ExitCode.connection);
    assert.match(req.stderr, /does not support SSL/);
    assert.ok(!req.stderr.includes(source.password!) && !req.stdout.includes(source.password!));
  });

  it('after one fallback to plain TCP, the same endpoint connects in plain TCP at once (one connection, not two)', async function () {
    // Counts the TCP connections the client opens, in front of the real server.
    let accepted = 0;
    const front = net.createServer((sock) => {
      accepted++;
      const back = net.connect(plain.port, plain.host);
      sock.pipe(back).pipe(sock);
      sock.on('error', () => back.destroy());
      back.on('error', () => sock.destroy());
    });
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
    try {
      const port = (front.address() as net.AddressInfo).port;
      const info: ConnInfo = { ...plain.conn(), port };
      assert.equal(info.sslmode, 'prefer');
      const opened = async (c: ConnInfo): Promise<number> => {
        const before = accepted;
        const client = await connect(c, 'source');
        const ssl = (await client.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).rows[0]!.ssl;
        await client.end();
        assert.equal(ssl, false);
        return accepted - before;
      };
      assert.equal(await opened(info), 2, 'the first session tries TLS, then plain TCP');
      assert.equal(await opened(info), 1, 'the next goes straight to plain TCP');
      assert.equal(await opened({ ...info }), 2, 'an endpoint not yet seen tries TLS again');
    } finally {
      await new Promise((r) => front.close(r));
    }
  });

  it('a plain URL to a server with TLS uses it everywhere; verify-full checks the certificate and the name', async function () {
    const s17 = await server(17);
    const source = await freshDatabase(await server(14), 'tls2_src');
    await loadSample(source, { sizeBytes: 3e6 });
    const target = await freshDatabase(s17, 'tls2_tgt');
    const sync = await pgrelocate([
      'sync',
      '--jobs',
      '2',
      '--quiet',
      '--replica-identity-full',
      '--source',
      url(source),
      '--target',
      url(target),
    ]);
    assert.equal(sync.exitCode, 0, sync.stderr);
    const tls = await tlsByApplication((await server(14)).conn());
    assert.equal(tls['pgrelocate-subscription'], true, 'the subscription reaches the source over TLS');
    assert.ok(
      Object.values(tls).every((x) => x),
      JSON.stringify(tls),
    );
    const c = await pgrelocate(['cutover', '--quiet', '--source', url(source), '--target', url(target)]);
    assert.equal(c.exitCode, 0, c.stderr);

    const ca = `sslrootcert=${encodeURIComponent(s17.certFile!)}`;
    const byName = { ...target, host: 'localhost' };
    for (const t of [
      url(target, `?sslmode=verify-full&${ca}`),
      url(byName, `?sslmode=verify-full&${ca}`),
      url(target, `?sslmode=verify-ca&${ca}`),
    ]) {
      const v = await pgrelocate(['verify', '--verify', 'count', '--source', url(source), '--target', t]);
      assert.equal(v.exitCode, 0, `${t.replace(/:[^@]*@/, '@')}: ${v.stderr}`);
    }
    // Another server's certificate: not the CA of this one.
    const otherCa = `sslrootcert=${encodeURIComponent((await server(14)).certFile!)}`;
    const wrong = await pgrelocate(['verify', '--source', url(source), '--target', url(target, `?sslmode=verify-full&${otherCa}`)]);
    assert.equal(wrong.exitCode, ExitCode.connection, wrong.stderr);
    assert.match(wrong.stderr, /certificate/i);
    const noCa = await pgrelocate(['verify', '--source', url(source), '--target', url(target, '?sslmode=verify-full')], {
      HOME: '/nonexistent',
    });
    assert.equal(noCa.exitCode, ExitCode.usage, noCa.stderr);
    assert.match(noCa.stderr, /sslrootcert=/);
  });

  it('sslmode=disable: sessions without TLS even where the server has it', async function () {
    const source = await freshDatabase(await server(14), 'tls_off_src');
    await sql(source, 'CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)');
    const target = await freshDatabase(await server(17), 'tls_off_tgt');
    await sql(target, 'CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)');
    const off = (c: ConnInfo): string => toUrl({ ...c, sslmode: 'disable' }, { password: true });
    const d = await pgrelocate(['verify', '--verify', 'count', '--source', off(source), '--target', off(target)]);
    assert.equal(d.exitCode, 0, d.stderr);
    const [row] = await sql<{ ssl: boolean }>(
      { ...target, sslmode: 'disable' },
      'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
    );
    assert.equal(row!.ssl, false);
  });

  it('a URL without a password takes it from PGPASSWORD or the passfile, for pgrelocate and for pg_dump', async function () {
    const source = await freshDatabase(await server(14), 'pw_src');
    await loadSample(source, { sizeBytes: 2e6 });
    const target = await freshDatabase(await server(17), 'pw_tgt');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pgrelocate-test-pass-'));
    try {
      const file = path.join(dir, 'pgpass');
      writeFileSync(file, [source, target].map((c) => `${c.host}:${c.port}:*:${c.user}:${c.password}`).join('\n') + '\n', { mode: 0o600 });
      const bare = (c: ConnInfo): string => toUrl({ ...c, password: undefined });
      const cp = await pgrelocate(['copy', '--jobs', '2', '--quiet', '--source', bare(source), '--target', bare(target)], {
        PGPASSFILE: file,
        PGPASSWORD: '',
      });
      assert.equal(cp.exitCode, 0, cp.stderr);
      // PGPASSWORD is one password for both ends, as in libpq: the same server here.
      const target2 = await freshDatabase(await server(14), 'pw_tgt2');
      const env = await pgrelocate(
        ['migrate', '--strategy', 'dump-restore', '--jobs', '2', '--quiet', '--source', bare(source), '--target', bare(target2)],
        {
          PGPASSWORD: source.password!,
          PGPASSFILE: '/nonexistent',
        },
      );
      assert.equal(env.exitCode, 0, env.stderr);
      const none = await pgrelocate(['check', '--source', bare(source), '--target', bare(target2)], {
        PGPASSFILE: '/nonexistent',
        PGPASSWORD: '',
      });
      assert.equal(none.exitCode, ExitCode.connection);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
