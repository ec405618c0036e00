/**
 * A PostgreSQL 11 source (the oldest npm-packaged server; Heroku and RDS
 * still run it): copy and logical sync + cutover to 17, verified by
 * checksum. Two things differ there: the `name` type takes no collation
 * (verification's column list), and floating-point values print differently
 * (11 gives 17 digits, 12+ the shortest exact form), so a text checksum of a
 * float column never matches across that line; pgrelocate's checksum reads
 * floats, geometric values and arrays of them in binary.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { bucardoSync } from '../../engine/strategies/bucardo';
import { toUrl, type ConnInfo } from '../../engine/conn';
import { ExitCode } from '../../engine/errors';
import { startServer } from '../../engine/local/cluster';
import { cleanup, cutover } from '../../engine/strategies';
import { copyOnce } from '../../engine/copy/once';
import { sync } from '../../engine/strategies/logical';
import { checksumExpr, verify } from '../../engine/verify';
import { pgrelocate } from '../helpers/cli';
import { freshDatabase, hasServer, newestPgDump, server, sql } from '../helpers/servers';

const SCHEMA = `
CREATE DOMAIN ratio AS float8 CHECK (VALUE >= 0);
CREATE TABLE measures (
  id bigserial PRIMARY KEY, x float8, y real, r ratio, xs float8[], at point, box box, note text, doc jsonb
);
INSERT INTO measures (x, y, r, xs, at, box, note, doc)
  SELECT i / 10.0, i / 3.0, i / 7.0, ARRAY[(i / 9.0)::float8, 1e-300::float8, 'Infinity'::float8], point(i / 11.0, -0.1), box(point(0, 0), point(i / 13.0, 1)),
         'n' || i, jsonb_build_object('v', i / 3.0)
    FROM generate_series(1, 3000) i;
INSERT INTO measures (x, y) VALUES ('NaN', '-0'), ('-Infinity', 1.17549435e-38);
CREATE TABLE readings (at date NOT NULL, sensor int NOT NULL, v float8, PRIMARY KEY (at, sensor)) PARTITION BY RANGE (at);
CREATE TABLE readings_2025 PARTITION OF readings FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE readings_2026 PARTITION OF readings FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO readings SELECT DATE '2025-01-01' + i % 700, i, i / 17.0 FROM generate_series(1, 5000) i;
-- Copied as text (an extension type rules out binary), and an unlogged table (copied as text at cutover).
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TABLE tagged (id int PRIMARY KEY, tag citext, w float8);
INSERT INTO tagged SELECT i, 'T' || i, i / 7.0 FROM generate_series(1, 500) i;
CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY, w float8);
INSERT INTO scratch SELECT i, i / 11.0 FROM generate_series(1, 500) i;
`;

async function setup(): Promise<{ source: ConnInfo; target: ConnInfo }> {
  const source = await freshDatabase(await server(11), 'osrc');
  await sql(source, SCHEMA);
  const target = await freshDatabase(await server(17), 'otgt');
  return { source, target };
}

describe('a PostgreSQL 11 source', function () {
  before(async function () {
    if (!hasServer(11) || !hasServer(17) || (await newestPgDump()) < 11) this.skip();
  });

  it('checksum columns: floats, geometric values and arrays of them in binary, a domain through its base type', function () {
    assert.equal(checksumExpr({ name: 'note' }), 't."note"');
    assert.equal(checksumExpr({ name: 'x', send: 'float8send' }), 'float8send(t."x")');
    assert.equal(checksumExpr({ name: 'r', send: 'float8send', cast: 'double precision' }), 'float8send(t."r"::double precision)');
    assert.equal(checksumExpr({ name: 'Odd "x"', send: 'array_send' }), 'array_send(t."Odd ""x""")');
  });

  it('11 → 17 copy: floats, points, float arrays and a float domain verify by checksum', async function () {
    const { source, target } = await setup();
    await copyOnce(source, target, { jobs: 2, verify: 'checksum', skipGlobals: true });
    const v = await verify(source, target, { mode: 'checksum', jobs: 2 });
    assert.equal(v.ok, true, v.mismatches.join('\n'));
    // A changed float is still seen: the binary form is exact.
    await sql(target, `UPDATE measures SET x = x + 1e-12 WHERE id = 7`);
    const changed = await verify(source, target, { mode: 'checksum', jobs: 2 });
    assert.deepEqual(changed.mismatches, ['"public"."measures": checksums differ']);
  });

  it('11 → 17 through the CLI: check and plan choose logical, dump-restore migrates, verified by checksum', async function () {
    const { source, target } = await setup();
    const env = { PGRELOCATE_SOURCE_URL: toUrl(source, { password: true }), PGRELOCATE_TARGET_URL: toUrl(target, { password: true }) };
    const check = await pgrelocate(['check', '--json'], env);
    assert.equal(check.exitCode, ExitCode.ok, check.stdout + check.stderr);
    const plan = await pgrelocate(['plan', '--json'], env);
    assert.equal((JSON.parse(plan.stdout) as { strategy: string }).strategy, 'logical', plan.stdout);
    const m = await pgrelocate(['migrate', '--strategy', 'dump-restore', '--jobs', '2', '--verify', 'checksum', '--json'], env);
    assert.equal(m.exitCode, ExitCode.ok, m.stdout + m.stderr);
    assert.equal((JSON.parse(m.stdout) as { verification: { ok: boolean } }).verification.ok, true);
  });

  it('11 → 17 logical sync, changes, cutover verified by checksum, nothing left behind', async function () {
    const { source, target } = await setup();
    await sync(source, target, { jobs: 2, skipGlobals: true });
    await sql(
      source,
      `UPDATE measures SET x = x * 3, xs = xs || 0.3::float8 WHERE id % 5 = 0;
       DELETE FROM measures WHERE id % 11 = 0;
       INSERT INTO measures (x, y, at) VALUES (0.1::float8 + 0.2::float8, 0.3, point(1e-310, 2));
       INSERT INTO readings VALUES ('2026-05-05', 1, 1 / 3.0);`,
    );
    const c = await cutover(source, target, { jobs: 2, verify: 'checksum' });
    assert.equal(c.verification!.ok, true, c.verification!.mismatches.join('\n'));
    const [row] = await sql<{ n: string }>(target, `SELECT count(*)::text AS n FROM measures WHERE x = 0.1::float8 + 0.2::float8`);
    assert.equal(row!.n, '1', 'the float written after the snapshot arrived bit for bit');
    await cleanup(source, target);
    const slots = await sql(source, `SELECT 1 FROM pg_replication_slots WHERE slot_name LIKE 'pgrelocate%'`);
    assert.equal(slots.length, 0);
  });

  it('11 → 17 with Bucardo (a source that may not replicate): first copy, changes, cutover verified by checksum, nothing left', async function () {
    if (!existsSync('/usr/bin/bucardo') || !existsSync('/usr/lib/postgresql/15/lib/plperl.so')) this.skip();
    const ctl = await startServer({ major: 15, name: 'old-bucardo-ctl' });
    try {
      const { source, target } = await setup();
      await bucardoSync(source, target, ctl.conn(), { jobs: 2 });
      await sql(source, `UPDATE measures SET x = x / 7, at = point(1e-5, 3) WHERE id % 4 = 0; DELETE FROM measures WHERE id % 13 = 0;`);
      const c = await cutover(source, target, { jobs: 2, verify: 'checksum' });
      assert.equal(c.verification!.ok, true, c.verification!.mismatches.join('\n'));
      const left = await sql(source, `SELECT 1 FROM pg_namespace WHERE nspname = 'bucardo'`);
      assert.equal(left.length, 0, 'no bucardo schema left on the source');
      await cleanup(source, target, { unfence: true, bucardoUrl: ctl.conn() });
    } finally {
      await ctl.stop();
    }
  });
});
