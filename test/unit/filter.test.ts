import assert from 'node:assert/strict';
import {
  compilePattern,
  dumpFilterArgs,
  filterSql,
  NO_FILTER,
  parseFilterFile,
  planFilter,
  relationIncluded,
  sameFilter,
  schemaIncluded,
  type FilterRelation,
  type TableFilter,
} from '../../engine/filter';

const f = (x: Partial<TableFilter>): TableFilter => ({ ...NO_FILTER, ...x });

describe('filters', function () {
  it("patterns read as pg_dump's: * and ?, folded to lower case unless quoted, other characters literal", function () {
    assert.deepEqual(compilePattern('App', 'schema'), { schema: null, name: '^(app)$' });
    assert.deepEqual(compilePattern('"App"', 'schema'), { schema: null, name: '^(App)$' });
    assert.deepEqual(compilePattern('app.audit_*', 'table'), { schema: '^(app)$', name: '^(audit_.*)$' });
    assert.deepEqual(compilePattern('"a.b"."x$1"', 'table'), { schema: '^(a\\.b)$', name: '^(x\\$1)$' });
    assert.equal(relationIncluded(f({ includeTable: ['"a*"'] }), 'public', 'aaa'), false, 'a quoted * is a star');
    assert.equal(relationIncluded(f({ includeTable: ['"a*"'] }), 'public', 'a*'), true);
    assert.equal(relationIncluded(f({ includeTable: ['t?'] }), 'public', 't1'), true);
    assert.equal(relationIncluded(f({ includeTable: ['t?'] }), 'public', 't12'), false);
    assert.equal(relationIncluded(f({ includeTable: ['[ab]'] }), 'public', 'a'), false, 'brackets are literal');
    assert.equal(relationIncluded(f({ includeTable: ['[ab]'] }), 'public', '[ab]'), true);
    assert.equal(relationIncluded(f({ excludeTable: ['orders'] }), 'sales', 'orders'), false, 'no schema: every schema');
    assert.throws(() => compilePattern('a.b', 'schema'), /schema pattern names schemas only/);
    assert.throws(() => compilePattern('db.s.t', 'table'), /more than schema\.table/);
    assert.throws(() => compilePattern('"open', 'table'), /unclosed double quote/);
    assert.throws(() => compilePattern('s.', 'table'), /empty part/);
  });

  it('include and exclude combine: included by every include list, excluded by any exclude', function () {
    const x = f({ includeSchema: ['app', 'billing'], excludeSchema: ['billing'], excludeTable: ['app.audit_*'] });
    assert.equal(schemaIncluded(x, 'app'), true);
    assert.equal(schemaIncluded(x, 'billing'), false);
    assert.equal(schemaIncluded(x, 'public'), false);
    assert.equal(relationIncluded(x, 'app', 'orders'), true);
    assert.equal(relationIncluded(x, 'app', 'audit_2024'), false);
    assert.equal(relationIncluded(undefined, 'anything', 'at_all'), true);
    assert.equal(filterSql(undefined), 'true');
    assert.match(filterSql(x), /n\.nspname ~ '\^\(billing\)\$'/);
  });

  it('the plan: a column sequence follows its table, a partition its parent; -N for a schema left whole unless it holds an extension', function () {
    const rel = (oid: number, schema: string, name: string, kind = 'r', extra: Partial<FilterRelation> = {}): FilterRelation => ({
      oid,
      schema,
      name,
      kind,
      ownedBy: null,
      parent: null,
      ...extra,
    });
    const relations = [
      rel(1, 'app', 'orders'),
      rel(2, 'app', 'orders_id_seq', 'S', { ownedBy: 1 }),
      rel(3, 'app', 'events', 'p'),
      rel(4, 'app', 'events_2024', 'r', { parent: 3 }),
      rel(5, 'app', 'events_2019', 'r', { parent: 3 }),
      rel(6, 'app', 'customers'),
      rel(7, 'app', 'order_totals', 'v'),
      rel(8, 'legacy', 'things'),
      rel(9, 'ext', 'ext_table'),
    ];
    const schemas = [
      { name: 'app', holdsExtension: false },
      { name: 'legacy', holdsExtension: false },
      { name: 'ext', holdsExtension: true },
    ];
    const edges = [
      { from: 1, to: 6, kind: 'foreign key' as const },
      { from: 7, to: 6, kind: 'view' as const },
      { from: 4, to: 3, kind: 'partition' as const },
      { from: 5, to: 3, kind: 'partition' as const },
    ];
    const p = planFilter(
      f({
        includeSchema: ['app', 'ext'],
        includeTable: ['orders', 'events', 'order_totals', 'nothing_like_this'],
        excludeTable: ['events_2019'],
      }),
      schemas,
      relations,
      edges,
    );
    assert.deepEqual(p.excludeSchemas, ['"legacy"']);
    assert.deepEqual(p.excludeRelations, ['"app"."customers"', '"app"."events_2019"', '"ext"."ext_table"']);
    assert.deepEqual(dumpFilterArgs(p), [
      '--exclude-schema="legacy"',
      '--exclude-table="app"."customers"',
      '--exclude-table="app"."events_2019"',
      '--exclude-table="ext"."ext_table"',
    ]);
    assert.deepEqual(
      p.crossings.map((c) => `${c.level} ${c.kind} ${c.from} -> ${c.to}`),
      [
        'error foreign key "app"."orders" -> "app"."customers"',
        'error view "app"."order_totals" -> "app"."customers"',
        'warning partition "app"."events_2019" -> "app"."events"',
      ],
    );
    assert.deepEqual(p.unmatched, [{ kind: 'includeTable', pattern: 'nothing_like_this' }]);
    assert.equal(p.kept, 5);
    assert.equal(p.left, 4);
  });

  it("a filter file: '<kind> <pattern>' lines or pgcopydb's sections; a bad line is named", function () {
    assert.deepEqual(
      parseFilterFile(
        ['# moved later', 'include-schema app', 'exclude-table app.audit_*', '', '[exclude-schema]', 'scratch', '; done'].join('\n'),
      ),
      f({ includeSchema: ['app'], excludeTable: ['app.audit_*'], excludeSchema: ['scratch'] }),
    );
    assert.deepEqual(parseFilterFile('[include-only-table]\npublic.a\npublic.b\n'), f({ includeTable: ['public.a', 'public.b'] }));
    assert.throws(() => parseFilterFile('include-schema app\nschema app', 'f.txt'), /f\.txt, line 2 \("schema app"\)/);
    assert.throws(() => parseFilterFile('[exclude-index]\nfoo'), /section \[exclude-index\] is not one pgrelocate filters by/);
    assert.equal(sameFilter(f({ includeSchema: ['a', 'b'] }), f({ includeSchema: ['b', 'a'] })), true);
    assert.equal(sameFilter(undefined, NO_FILTER), true);
    assert.equal(sameFilter(f({ includeSchema: ['a'] }), undefined), false);
  });
});
