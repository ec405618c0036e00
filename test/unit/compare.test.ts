import assert from 'node:assert/strict';
import { beyondBaseline, compareSnapshots, NORMALISERS, type ObjectFacts, type Snapshot } from '../../engine/compare';

function snap(major: number, objects: ObjectFacts[]): Snapshot {
  return { major, objects: new Map(objects.map((o) => [`${o.type} ${o.identity}`, o])) };
}
const table = (identity: string, aspects: Record<string, string>): ObjectFacts => ({ type: 'table', identity, aspects });

describe('compare', function () {
  it('finds missing, extra and changed objects aspect by aspect; roles only the target has are not differences', function () {
    const src = snap(17, [table('public.a', { owner: 'app', rows: '3 rows, digest 1' }), table('public.b', { owner: 'app' })]);
    const tgt = snap(17, [
      table('public.a', { owner: 'app', rows: '2 rows, digest 7' }),
      table('public.c', { owner: 'app' }),
      { type: 'role', identity: 'other', aspects: {} },
    ]);
    const c = compareSnapshots(src, tgt);
    assert.deepEqual(
      c.differences.map((d) => `${d.key} ${d.aspect}`),
      ['table public.a rows', 'table public.b exists', 'table public.c exists'],
    );
    assert.equal(c.compared, 2);
  });

  it('normalises what only the newer target adds, counting each rule, and only across the versions it concerns', function () {
    const acl = 'app=SELECT/app';
    const src = snap(15, [
      table('public.a', { acl }),
      { type: 'view', identity: 'public.v', aspects: { definition: 'SELECT a.x FROM a' } },
      { type: 'database setting', identity: '(all roles)', aspects: { value: 'default_transaction_read_only=on timezone=UTC' } },
    ]);
    const tgt = snap(17, [
      table('public.a', { acl: `${acl} app=MAINTAIN/app` }),
      { type: 'view', identity: 'public.v', aspects: { definition: 'SELECT x FROM a' } },
      { type: 'database setting', identity: '(all roles)', aspects: { value: 'timezone=UTC' } },
      { type: 'domain constraint', identity: 'd_not_null on public.d', aspects: { definition: 'n NOT NULL x' } },
    ]);
    const c = compareSnapshots(src, tgt);
    assert.deepEqual(c.differences, []);
    assert.deepEqual(Object.keys(c.normalised).sort(), [
      'MAINTAIN privilege of 17',
      'NOT NULL constraints of domains (17)',
      'deparse: table qualifiers (16)',
      "the cutover's write fence on the source",
    ]);
    // 17 → 17: MAINTAIN on one side only is a real difference.
    const same = compareSnapshots(
      snap(17, [table('public.a', { acl })]),
      snap(17, [table('public.a', { acl: `${acl} app=MAINTAIN/app` })]),
    );
    assert.equal(same.differences.length, 1);
    assert.ok(NORMALISERS.every((n) => n.name.length > 0));
  });

  it('a method is judged against the baseline: only differences pg_dump | pg_restore does not share remain', function () {
    const base = [{ key: 'table public.kid', aspect: 'definition', source: 'b, a', target: 'a, b' }];
    const method = [...base, { key: 'table public.t', aspect: 'rows', source: '3 rows', target: '2 rows' }];
    const { beyond, shared } = beyondBaseline(method, base);
    assert.deepEqual(
      beyond.map((d) => d.key),
      ['table public.t'],
    );
    assert.equal(shared.length, 1);
    // The same object lost differently is not excused by the baseline.
    assert.equal(beyondBaseline([{ ...base[0]!, target: 'b' }], base).beyond.length, 1);
  });
});
