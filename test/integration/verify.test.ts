/**
 * Verification measures small tables ten to a query (a cutover verifies
 * inside its blackout): a difference, an unreadable table or a missing one in
 * such a batch must still be reported on that table, and on no other.
 */
import assert from 'node:assert/strict';
import { batchQuery, verify, verifyBatches } from '../../engine/verify';
import { freshDatabase, hasServer, server, sql } from '../helpers/servers';

const tables = (n: number): string =>
  Array.from(
    { length: n },
    (_, i) => `CREATE TABLE t${i} (id int PRIMARY KEY, v text, x float8);
               INSERT INTO t${i} SELECT g, 'v' || g, g / 3.0 FROM generate_series(1, ${10 + i}) g;`,
  ).join('\n') +
  `\nCREATE TABLE nokey (a int, b text); INSERT INTO nokey VALUES (1, 'a'), (2, 'b');\nCREATE SEQUENCE s1; SELECT nextval('s1');`;

describe('verification in batches', function () {
  before(function () {
    if (!hasServer(17)) this.skip();
  });

  it('groups small tables ten to a query, large ones alone', function () {
    const t = (bytes: number, key: string) => ({ bytes, key });
    const b = verifyBatches([t(10, 'a'), t(9e6, 'big'), ...Array.from({ length: 12 }, (_, i) => t(100 + i, `s${i}`))]);
    assert.deepEqual(
      b.map((x) => x.length),
      [1, 10, 3],
    );
    assert.equal(b[0]![0]!.key, 'big');
    const q = batchQuery(
      [
        { key: 'public."a"', schema: 'public', name: 'a', columns: [{ name: 'id' }], pk: 'id', bytes: 1 },
        { key: 'public."b"', schema: 'public', name: 'b', columns: [{ name: 'x', send: 'float8send' }], pk: null, bytes: 1 },
      ],
      'checksum',
    );
    assert.match(q, /^SELECT 0 AS i, x\.\* FROM \(SELECT count\(\*\)/);
    assert.match(
      q,
      /UNION ALL\nSELECT 1 AS i, x\.\* FROM \(SELECT count\(\*\)::text AS n, .*float8send\(t\."x"\).*NULL::text AS r FROM ONLY public\."b" AS t\) x$/,
    );
  });

  it('a difference, an unreadable table and a missing one each land on their own table', async function () {
    const s = await server(17);
    const [source, target] = [await freshDatabase(s, 'vsrc'), await freshDatabase(s, 'vtgt')];
    for (const c of [source, target]) await sql(c, tables(25));
    assert.equal((await verify(source, target, { mode: 'checksum', jobs: 2 })).ok, true);
    await sql(
      target,
      `UPDATE t3 SET x = x + 1e-9 WHERE id = 2;
       ALTER TABLE t7 DROP COLUMN v;
       DROP TABLE t12;
       DELETE FROM nokey WHERE a = 2;
       CREATE TABLE extra (i int);`,
    );
    for (const mode of ['checksum', 'count'] as const) {
      const v = await verify(source, target, { mode, jobs: 2 });
      const bad = v.tables.filter((t) => !t.ok).map((t) => `${t.table}: ${t.problem?.replace(/: .*$/s, '')}`);
      assert.deepEqual(
        bad.sort(),
        [
          // A count reads no column: the changed float and the dropped column show in checksum mode only.
          ...(mode === 'checksum' ? ['"public"."t3": checksums differ', '"public"."t7": cannot read on target'] : []),
          '"public"."nokey": rows differ (source 2, target 1)',
          '"public"."t12": missing on target',
        ].sort(),
        mode,
      );
      assert.deepEqual(v.extraOnTarget, ['"public"."extra"']);
      assert.equal(v.tables.filter((t) => t.ok).length, mode === 'checksum' ? 22 : 24, 'every other table compares equal');
    }
  });

  it('primary-key ranges compare in the key type: 1..300 (not 1..99), and a changed largest key is caught by count mode', async function () {
    const s = await server(17);
    const [source, target] = [await freshDatabase(s, 'rsrc'), await freshDatabase(s, 'rtgt')];
    for (const c of [source, target]) await sql(c, 'CREATE TABLE r (id int PRIMARY KEY); INSERT INTO r SELECT generate_series(1, 300)');
    const same = await verify(source, target, { mode: 'count', jobs: 1 });
    assert.equal(same.tables[0]!.sourcePkRange, '1..300');
    await sql(target, 'UPDATE r SET id = 1000 WHERE id = 300');
    const v = await verify(source, target, { mode: 'count', jobs: 1 });
    assert.equal(v.ok, false);
    assert.equal(v.tables[0]!.problem, 'primary key range differs (source 1..300, target 1..1000)');
  });
});
