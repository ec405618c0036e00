import assert from 'node:assert/strict';
import { preDataStages, tableEntryOid, type PreDataDeps } from '../../engine/copy/pre-data-stages';

const table = (oid: number, name = `t${oid}`): string => `${oid}; 1259 ${oid} TABLE app ${name} owner`;
const deps = (tables: readonly number[], owned: readonly [number, number][] = []): PreDataDeps => ({
  tables: new Set(tables),
  ownedSequences: new Map(owned),
});

describe('pre-data in stages (pure parts)', function () {
  it("reads a table entry's source oid, and nothing else's", function () {
    assert.equal(tableEntryOid('203; 1259 16386 TABLE many t1 postgres'), 16386);
    assert.equal(tableEntryOid('203; 1259 16386 TABLE many my table postgres'), 16386);
    assert.equal(tableEntryOid('8; 2615 16385 SCHEMA - many postgres'), null);
    assert.equal(tableEntryOid('9; 1259 16400 SEQUENCE many s postgres'), null);
    assert.equal(tableEntryOid('10; 1259 16401 VIEW many v postgres'), null);
  });

  it('splits a run of independent tables round-robin, each with its comments and grants; the rest keeps its order in one session', function () {
    const head = ['1; 2615 1 TYPE app mood owner', '2; 1255 2 FUNCTION app f() owner'];
    const run = Array.from({ length: 6 }, (_, i) => table(100 + i));
    const lines = [
      '; comment',
      ...head,
      run[0]!,
      '50; 0 0 COMMENT app TABLE t100 owner',
      '51; 0 0 COMMENT app COLUMN t100.a owner',
      run[1]!,
      '52; 0 0 ACL app TABLE t101 owner',
      ...run.slice(2),
      table(200),
      '60; 1259 300 SEQUENCE app s owner',
      '61; 1259 301 VIEW app v owner',
    ];
    const stages = preDataStages(lines, deps([100, 101, 102, 103, 104, 105]), 2, 3);
    assert.deepEqual(stages, [
      { kind: 'serial', lines: head },
      {
        kind: 'parallel',
        lists: [
          [run[0], '50; 0 0 COMMENT app TABLE t100 owner', '51; 0 0 COMMENT app COLUMN t100.a owner', run[2], run[4]],
          [run[1], '52; 0 0 ACL app TABLE t101 owner', run[3], run[5]],
        ],
      },
      { kind: 'serial', lines: [table(200), '60; 1259 300 SEQUENCE app s owner', '61; 1259 301 VIEW app v owner'] },
    ]);
  });

  it('a dependent table or any other entry ends a run; runs shorter than the minimum, or one job, stay serial', function () {
    const lines = [table(1), table(2), table(3), table(4), table(5), table(6), table(7)];
    // 4 depends on another table: two runs of three.
    const two = preDataStages(lines, deps([1, 2, 3, 5, 6, 7]), 2, 3);
    assert.deepEqual(
      two.map((s) => s.kind),
      ['parallel', 'serial', 'parallel'],
    );
    assert.deepEqual(two[1], { kind: 'serial', lines: [table(4)] });
    assert.deepEqual(preDataStages(lines, deps([1, 2, 3, 5, 6, 7]), 2, 4), [{ kind: 'serial', lines }]);
    assert.deepEqual(preDataStages(lines, deps([1, 2, 3, 4, 5, 6, 7]), 1, 3), [{ kind: 'serial', lines }]);
    // A comment with no table run before it is serial like the rest.
    assert.deepEqual(preDataStages(['5; 0 0 COMMENT app TABLE x owner'], deps([]), 2, 1), [
      { kind: 'serial', lines: ['5; 0 0 COMMENT app TABLE x owner'] },
    ]);
  });

  it("a sequence its table owns joins the table's list, with its OWNED BY; one owned by a table not in the run ends it", function () {
    const seq = (oid: number, name: string): string => `${oid}; 1259 ${oid} SEQUENCE app ${name} owner`;
    const lines = [
      table(1),
      table(2),
      seq(10, 't1_id_seq'),
      '11; 0 0 SEQUENCE OWNED BY app t1_id_seq owner',
      table(3),
      seq(20, 't2_id_seq'),
      table(4),
      seq(30, 'other_seq'),
      table(5),
    ];
    const stages = preDataStages(
      lines,
      deps(
        [1, 2, 3, 4, 5],
        [
          [10, 1],
          [20, 2],
          [30, 99],
        ],
      ),
      2,
      2,
    );
    assert.deepEqual(stages, [
      {
        kind: 'parallel',
        lists: [
          [table(1), seq(10, 't1_id_seq'), '11; 0 0 SEQUENCE OWNED BY app t1_id_seq owner', table(3)],
          [table(2), seq(20, 't2_id_seq'), table(4)],
        ],
      },
      { kind: 'serial', lines: [seq(30, 'other_seq'), table(5)] },
    ]);
  });

  it('a sequence whose table an earlier stage made goes into the run on its own (pg_dump sorts t1_id_seq after t199)', function () {
    const seq = (oid: number, name: string): string => `${oid}; 1259 ${oid} SEQUENCE app ${name} owner`;
    const lines = [table(1), '9; 1259 9 VIEW app v owner', table(10), table(11), seq(20, 't1_id_seq'), table(12)];
    assert.deepEqual(preDataStages(lines, deps([1, 10, 11, 12], [[20, 1]]), 2, 3), [
      { kind: 'serial', lines: [table(1), '9; 1259 9 VIEW app v owner'] },
      {
        kind: 'parallel',
        lists: [
          [table(10), seq(20, 't1_id_seq')],
          [table(11), table(12)],
        ],
      },
    ]);
  });
});
