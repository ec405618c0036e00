import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  clientConfig,
  describe as describeConn,
  parseUrl,
  passfileLookup,
  redact,
  sslConfig,
  sslFallback,
  toUrl,
  withDatabase,
  withoutUnknownSetting,
  type ConnInfo,
} from '../../engine/conn';
import { PgrelocateError } from '../../engine/errors';

describe('connection URLs', function () {
  it('parses every part, decoding percent-escapes', function () {
    const c = parseUrl('postgresql://app%40corp:p%40ss%3Aw0rd@db.example.com:6432/shop?sslmode=require&connect_timeout=5');
    assert.deepEqual(c, {
      host: 'db.example.com',
      port: 6432,
      user: 'app@corp',
      password: 'p@ss:w0rd',
      database: 'shop',
      sslmode: 'require',
      params: { connect_timeout: '5' },
    });
  });

  it('every session turns off statement, lock and idle-in-transaction timeouts and row security, asks for every float digit, keeping its own options', function () {
    const info = parseUrl('postgresql://u@h/db');
    assert.equal(
      clientConfig(info).options,
      '-c statement_timeout=0 -c lock_timeout=0 -c idle_in_transaction_session_timeout=0 -c row_security=off -c extra_float_digits=3',
    );
    assert.match(
      clientConfig(info, { options: '-c maintenance_work_mem=64MB' }).options ?? '',
      /extra_float_digits=3 -c maintenance_work_mem=64MB$/,
    );
  });

  it('an older server that does not know a session setting: the same options without it, once', function () {
    const o = '-c statement_timeout=0 -c idle_in_transaction_session_timeout=0 -c row_security=off -c maintenance_work_mem=64MB';
    assert.equal(
      withoutUnknownSetting(o, 'unrecognized configuration parameter "row_security"'),
      '-c statement_timeout=0 -c idle_in_transaction_session_timeout=0 -c maintenance_work_mem=64MB',
    );
    assert.equal(withoutUnknownSetting('-c statement_timeout=0', 'unrecognized configuration parameter "row_security"'), null);
    assert.equal(withoutUnknownSetting(o, 'password authentication failed for user "u"'), null);
  });

  it('fills what the URL leaves out as libpq does: defaults, then PG* variables', function () {
    const none = { env: { PGPASSFILE: '/nonexistent/pgpass' }, osUser: 'alice' };
    const c = parseUrl('postgres://h', 'x', none);
    assert.deepEqual(
      { port: c.port, user: c.user, database: c.database, sslmode: c.sslmode, password: c.password },
      { port: 5432, user: 'alice', database: 'alice', sslmode: 'prefer', password: undefined },
    );
    const env = {
      PGPASSFILE: '/nonexistent/pgpass',
      PGUSER: 'bob',
      PGDATABASE: 'shop',
      PGPORT: '6543',
      PGSSLMODE: 'require',
      PGPASSWORD: 'fromenv',
      PGHOST: 'envhost',
    };
    const e = parseUrl('postgresql://', 'x', { env });
    assert.deepEqual(
      { host: e.host, port: e.port, user: e.user, database: e.database, sslmode: e.sslmode, password: e.password },
      { host: 'envhost', port: 6543, user: 'bob', database: 'shop', sslmode: 'require', password: 'fromenv' },
    );
    // What the URL says wins over the environment.
    const u = parseUrl('postgresql://carol:pw@h:5433/db?sslmode=verify-ca', 'x', { env });
    assert.deepEqual([u.user, u.password, u.port, u.database, u.sslmode], ['carol', 'pw', 5433, 'db', 'verify-ca']);
    assert.throws(() => parseUrl('postgresql://h/db', 'x', { env: { PGSSLMODE: 'sometimes' } }), /Unknown sslmode "sometimes"/);
  });

  it('takes the password from the passfile, as libpq matches it, and ignores a passfile others can read', function () {
    const text = ['# comment', 'other:5432:*:bob:no', 'h:5432:shop:b\\:ob:pa\\:ss', 'h:*:*:bob:yes', '*:*:*:*:any'].join('\n');
    assert.equal(passfileLookup(text, { host: 'h', port: 5432, database: 'x', user: 'bob' }), 'yes');
    assert.equal(passfileLookup(text, { host: 'h', port: 5432, database: 'shop', user: 'b:ob' }), 'pa:ss');
    assert.equal(passfileLookup(text, { host: 'z', port: 1, database: 'y', user: 'w' }), 'any');
    assert.equal(passfileLookup('localhost:*:*:u:sock', { host: '/run/postgresql', port: 5432, database: 'd', user: 'u' }), 'sock');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pgrelocate-unit-'));
    try {
      const file = path.join(dir, 'pgpass');
      writeFileSync(file, 'h:5432:*:bob:secret\n', { mode: 0o600 });
      assert.equal(parseUrl('postgresql://bob@h/db', 'x', { env: { PGPASSFILE: file } }).password, 'secret');
      chmodSync(file, 0o644);
      assert.equal(parseUrl('postgresql://bob@h/db', 'x', { env: { PGPASSFILE: file } }).password, undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('TLS per sslmode as libpq: prefer/require encrypt without checking, verify-ca the chain, verify-full the name too', function () {
    const noRoot = (): undefined => undefined;
    const at = (q: string): ConnInfo => parseUrl(`postgresql://u:p@h/db${q}`, 'x', { env: {} });
    assert.deepEqual(sslConfig(at(''), noRoot), { rejectUnauthorized: false });
    assert.deepEqual(sslConfig(at('?sslmode=require'), noRoot), { rejectUnauthorized: false });
    assert.equal(sslConfig(at('?sslmode=allow'), noRoot), false);
    assert.throws(
      () => sslConfig(at('?sslmode=verify-full'), noRoot),
      (e: PgrelocateError) => e.code === 'bad-url' && /sslrootcert=/.test(e.fix),
    );
    const system = sslConfig(at('?sslmode=verify-full&sslrootcert=system'), noRoot) as { rejectUnauthorized: boolean; ca?: string };
    assert.equal(system.rejectUnauthorized, true);
    assert.equal(system.ca, undefined);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pgrelocate-unit-'));
    try {
      const ca = path.join(dir, 'ca.pem');
      writeFileSync(ca, 'CERT');
      const ver = sslConfig(at(`?sslmode=verify-ca&sslrootcert=${ca}`), noRoot) as { ca: string; checkServerIdentity?: unknown };
      assert.equal(ver.ca, 'CERT');
      assert.equal(typeof ver.checkServerIdentity, 'function');
      const full = sslConfig(at(`?sslmode=verify-full&sslrootcert=${ca}`), noRoot) as { checkServerIdentity?: unknown };
      assert.equal(full.checkServerIdentity, undefined);
      // require with a root certificate checks the chain, as libpq does.
      assert.equal(
        (sslConfig(at(`?sslmode=require&sslrootcert=${ca}`), noRoot) as { rejectUnauthorized: boolean }).rejectUnauthorized,
        true,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(sslFallback('prefer', new Error('The server does not support SSL connections')), false);
    assert.deepEqual(sslFallback('allow', new Error('no pg_hba.conf entry for host "x", user "u", database "d", no encryption')), {
      rejectUnauthorized: false,
    });
    assert.equal(sslFallback('require', new Error('The server does not support SSL connections')), null);
  });

  it('sslmode=disable: no TLS at all', function () {
    assert.equal(sslConfig(parseUrl('postgresql://u@h/db?sslmode=disable', 'x', { env: {} })), false);
  });

  it('a Unix-socket host round-trips through ?host=', function () {
    const c = parseUrl('postgresql:///shop?host=%2Frun%2Fpostgresql&user=u&password=pw&port=5433', 'x', { env: {} });
    assert.deepEqual([c.host, c.port, c.user, c.password, c.database], ['/run/postgresql', 5433, 'u', 'pw', 'shop']);
    assert.deepEqual(parseUrl(toUrl(c, { password: true }), 'x', { env: {} }), c);
    assert.ok(!toUrl(c).includes('pw'));
  });

  it('round-trips through toUrl, and describe() never shows the password', function () {
    const c = parseUrl('postgresql://u:s3cr%2Ft@[::1]:5433/d%20b?sslmode=verify-full');
    assert.deepEqual(parseUrl(toUrl(c, { password: true })), c);
    assert.ok(!describeConn(c).includes('s3cr'));
    assert.equal(withDatabase(c, 'other').database, 'other');
  });

  it('rejects other schemes, typos and unknown sslmodes with the fix, never repeating the password', function () {
    assert.throws(
      () => parseUrl('mysql://u:hunter2@h/db'),
      (e: PgrelocateError) => e.code === 'bad-url' && !e.message.includes('hunter2'),
    );
    assert.throws(() => parseUrl('postgresql://h/db?sslmode=maybe'), /Unknown sslmode "maybe"/);
    for (const typo of [
      'not a url :: hunter2',
      'postgresql:/postgres:hunter2@127.0.0.1:5432/postgres',
      'postgresql:postgres:hunter2@127.0.0.1/db',
      'postgresql//postgres:hunter2@h/db',
      'postgresql://u:hunter2@h:99999/db',
      'postgresql://u:hunter2@h:port/db',
    ]) {
      assert.throws(
        () => parseUrl(typo),
        (e: PgrelocateError) =>
          e.code === 'bad-url' && /postgresql:\/\/USER/.test(e.fix) && !e.message.includes('hunter2') && !e.fix.includes('hunter2'),
        typo,
      );
    }
  });

  it('redacts passwords in URLs, key=value pairs and role DDL', function () {
    assert.equal(redact('see postgresql://bob:hunter2@h:5432/db now'), 'see postgresql://bob:***@h:5432/db now');
    assert.equal(redact('host=h password=hunter2 user=bob'), 'host=h password=*** user=bob');
    assert.equal(redact("ALTER ROLE bob WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:abc=$x:y=';"), "ALTER ROLE bob WITH LOGIN PASSWORD '***';");
    assert.equal(redact("PASSWORD 'it''s'"), "PASSWORD '***'");
  });
});
