import assert from 'node:assert/strict';
import { clientConfig, describe as describeConn, parseUrl, redact, toUrl, withDatabase, withoutUnknownSetting } from '../../engine/conn';
import { PgferryError } from '../../engine/errors';

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

  it('defaults port, user and database like libpq', function () {
    const c = parseUrl('postgres://h');
    assert.equal(c.port, 5432);
    assert.equal(c.user, 'postgres');
    assert.equal(c.database, 'postgres');
    assert.equal(c.sslmode, 'prefer');
    assert.equal(c.password, undefined);
  });

  it('round-trips through toUrl, and describe() never shows the password', function () {
    const c = parseUrl('postgresql://u:s3cr%2Ft@[::1]:5433/d%20b?sslmode=verify-full');
    assert.deepEqual(parseUrl(toUrl(c, { password: true })), c);
    assert.ok(!describeConn(c).includes('s3cr'));
    assert.equal(withDatabase(c, 'other').database, 'other');
  });

  it('rejects other schemes and unknown sslmodes with the fix, without the password', function () {
    assert.throws(
      () => parseUrl('mysql://u:hunter2@h/db'),
      (e: PgferryError) => e.code === 'bad-url' && !e.message.includes('hunter2'),
    );
    assert.throws(() => parseUrl('postgresql://h/db?sslmode=maybe'), /Unknown sslmode "maybe"/);
    assert.throws(
      () => parseUrl('not a url :: hunter2'),
      (e: PgferryError) => /postgresql:\/\/USER/.test(e.fix) && !e.message.includes('hunter2'),
    );
  });

  it('redacts passwords in URLs, key=value pairs and role DDL', function () {
    assert.equal(redact('see postgresql://bob:hunter2@h:5432/db now'), 'see postgresql://bob:***@h:5432/db now');
    assert.equal(redact('host=h password=hunter2 user=bob'), 'host=h password=*** user=bob');
    assert.equal(redact("ALTER ROLE bob WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:abc=$x:y=';"), "ALTER ROLE bob WITH LOGIN PASSWORD '***';");
    assert.equal(redact("PASSWORD 'it''s'"), "PASSWORD '***'");
  });
});
