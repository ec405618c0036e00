import assert from 'node:assert/strict';
import { estimateDumpBytes, fullCopyTables, hasErrors, runChecks, settingList, type CheckFacts } from '../../engine/check';
import { rollbackBlocker } from '../../engine/streaming/rollback';
import type { Inventory } from '../../engine/inspect';
import { chooseStrategy } from '../../engine/plan';
import { recheck } from '../../engine/preflight';
import { inventory, tableInfo } from '../helpers/fixtures';

const table = tableInfo;

function facts(over: Partial<CheckFacts> = {}): CheckFacts {
  return {
    source: inventory(12),
    target: inventory(17),
    strategy: 'dump-restore',
    force: false,
    sameEndpoint: false,
    tools: { major: 15, version: '15.18' },
    workDirFree: 1e12,
    workDir: '/tmp',
    ...over,
  };
}

const codes = (f: CheckFacts, level = 'error') =>
  runChecks(f)
    .filter((x) => x.level === level)
    .map((x) => x.code);

describe('check rules', function () {
  it('says whether cutover --rollback is available for a streaming strategy, and why not (the source cannot subscribe, the new server cannot publish)', function () {
    const rollback = (f: CheckFacts) => runChecks(f).find((x) => x.code === 'rollback')?.message ?? '';
    assert.match(rollback(facts({ strategy: 'bucardo' })), /--rollback can arm a way back/);
    assert.equal(rollback(facts()), '', 'dump-restore has no switch to undo');
    const heroku = inventory(14);
    const noSub = { ...heroku, server: { ...heroku.server, canCreateSubscription: false, currentUser: 'u8f3' } };
    assert.match(
      rollback(facts({ strategy: 'bucardo', source: noSub })),
      /unavailable: user "u8f3" may not create a subscription on the source/,
    );
    const rds = { ...noSub, server: { ...noSub.server, managedAdminOf: ['rds_superuser'] } };
    assert.equal(rollbackBlocker(rds.server, inventory(17).server), null);
    const old = inventory(9);
    assert.match(
      rollbackBlocker({ ...old.server, versionNum: 90624, major: 9.6 }, inventory(17).server) ?? '',
      /PostgreSQL 9\.6, which cannot subscribe/,
    );
    const t = inventory(17);
    assert.match(rollbackBlocker(heroku.server, { ...t.server, settings: { wal_level: 'replica' } }) ?? '', /wal_level is replica/);
    assert.match(
      rollbackBlocker(heroku.server, { ...t.server, canReplicate: false }) ?? '',
      /may not create a replication slot on the new server/,
    );
  });

  it('passes a clean 12 → 17 pair', function () {
    assert.equal(hasErrors(runChecks(facts())), false);
  });

  it('refuses an older target, naming the version to create', function () {
    const f = runChecks(facts({ source: inventory(16), target: inventory(14) })).find((x) => x.code === 'target-older')!;
    assert.equal(f.level, 'error');
    assert.match(f.fix, /PostgreSQL 16 or newer/);
  });

  it('refuses a non-empty target unless --force, which turns it into a warning', function () {
    assert.ok(codes(facts({ target: inventory(17, { objects: 3 }) })).includes('target-not-empty'));
    assert.ok(codes(facts({ target: inventory(17, { objects: 3 }), force: true }), 'warning').includes('target-not-empty'));
    assert.ok(!codes(facts({ target: inventory(17, { objects: 3 }), force: true })).includes('target-not-empty'));
  });

  it('refuses what the target server cannot take, for every strategy: C functions, lz4 columns, generated columns over plain parents', function () {
    const widget = { signature: 'public.widget_in(cstring)', library: '/opt/regress.so', symbol: 'widget_in' };
    for (const strategy of ['dump-restore', 'logical'] as const) {
      // Not a superuser on the target: no C function can be created at all.
      assert.ok(codes(facts({ strategy, source: inventory(15, { cFunctions: [widget] }) })).includes('c-functions-need-superuser'));
      const su = inventory(17, { superuser: true });
      assert.ok(
        !codes(facts({ strategy, source: inventory(15, { cFunctions: [widget] }), target: su })).includes('c-functions-need-superuser'),
      );
      const missing = runChecks(
        facts({
          strategy,
          source: inventory(15, { cFunctions: [widget] }),
          target: su,
          unloadableFunctions: [{ signature: widget.signature, library: widget.library, error: 'could not access file "/opt/regress.so"' }],
        }),
      ).find((x) => x.code === 'c-library-missing')!;
      assert.match(missing.message, /public\.widget_in\(cstring\) \(could not access file/);
      assert.match(missing.fix, /Install \/opt\/regress\.so on the target server, built for PostgreSQL 17/);
    }
    const lz4 = { lz4Columns: [{ table: 'public.cmdata1', column: 'f1', matview: false }] };
    assert.ok(!codes(facts({ source: inventory(15, lz4) })).includes('lz4-unavailable'));
    const l = runChecks(facts({ source: inventory(15, lz4), target: inventory(17, { lz4: false }) })).find(
      (x) => x.code === 'lz4-unavailable',
    )!;
    assert.match(l.fix, /ALTER TABLE public\.cmdata1 ALTER COLUMN f1 SET COMPRESSION pglz;/);
    const gen = { generatedOverPlain: ['public.gtest_normal_child.b'] };
    assert.ok(codes(facts({ source: inventory(15, gen), target: inventory(16) })).includes('generated-child-of-plain'));
    assert.ok(!codes(facts({ source: inventory(14, gen), target: inventory(15) })).includes('generated-child-of-plain'));
  });

  it('a preflight is reused for another strategy or flags: the checks run again on the same inventories', function () {
    const tables = [table('log', { primaryKey: [], replicaIdentity: 'd', hasUsableUniqueIndex: false })];
    const f = facts({ strategy: 'dump-restore', source: inventory(12, { tables }) });
    const pre = { source: f.source, target: f.target, tools: null, findings: runChecks(f), ok: true, facts: f };
    const logical = recheck(pre, { strategy: 'logical' });
    assert.equal(logical.ok, false);
    assert.ok(logical.findings.some((x) => x.code === 'no-replica-identity'));
    const full = recheck(pre, { strategy: 'logical', replicaIdentityFull: true });
    assert.ok(!full.findings.some((x) => x.code === 'no-replica-identity'));
    assert.equal(full.source, pre.source, 'the same inventory, not a new one');
  });

  it('refuses the same database on both sides', function () {
    assert.ok(codes(facts({ sameEndpoint: true })).includes('same-database'));
  });

  it('streaming strategies refuse source tables whose owner the user cannot act as, naming the GRANT; dump-restore does not need it', function () {
    const tables = [table('orders'), table('ledger', { owner: 'finance', owned: false }), table('audit', { owner: 'ops', owned: false })];
    for (const strategy of ['logical', 'pglogical', 'bucardo'] as const) {
      const f = runChecks(facts({ strategy, source: inventory(12, { tables }) })).find((x) => x.code === 'source-tables-not-owned');
      assert.ok(f, strategy);
      assert.match(f.message, /2 source tables .*\(finance, ops\)/);
      assert.match(f.fix, /GRANT "finance", "ops" TO "admin"/);
    }
    assert.ok(!runChecks(facts({ source: inventory(12, { tables }) })).some((x) => x.code === 'source-tables-not-owned'));
  });

  it('streaming strategies refuse a login role whose own read-only setting the fence could not override', function () {
    const fenceRoles = [
      { name: 'reporting', alterable: true },
      { name: 'heroku_admin', alterable: false },
    ];
    const f = runChecks(facts({ strategy: 'logical', source: inventory(12, { fenceRoles }) })).find(
      (x) => x.code === 'fence-roles-unalterable',
    );
    assert.ok(f);
    assert.match(f.message, /Login roles heroku_admin set default_transaction_read_only themselves/);
    assert.match(f.fix, /ALTER ROLE "heroku_admin" IN DATABASE "app" RESET default_transaction_read_only/);
    assert.ok(
      !runChecks(facts({ source: inventory(12, { fenceRoles }) })).some((x) => x.code === 'fence-roles-unalterable'),
      'dump-restore fences nothing',
    );
  });

  it('--replica-identity-full routes key-less tables with a column that has no equality operator to a full copy at cutover, naming them', function () {
    const tables = [
      table('shapes', { primaryKey: [], replicaIdentity: 'd', hasUsableUniqueIndex: false, columnsWithoutEquality: ['p', 'j'] }),
      table('log', { primaryKey: [], replicaIdentity: 'd', hasUsableUniqueIndex: false }),
      table('keyed', { columnsWithoutEquality: ['doc'] }),
    ];
    const found = runChecks(facts({ strategy: 'logical', replicaIdentityFull: true, source: inventory(12, { tables }) }));
    const f = found.find((x) => x.code === 'replica-identity-full-no-equality');
    assert.equal(f?.level, 'warning');
    assert.match(f.message, /1 tables without a key .*copied again in full inside the cutover window: "app"."shapes" \(p, j\)/);
    assert.doesNotMatch(f.message, /keyed|"log"/);
    const full = found.find((x) => x.code === 'replica-identity-full')!;
    assert.match(full.message, /^1 tables .*"app"."log"/);
    assert.ok(!found.some((x) => x.level === 'error' && /replica-identity/.test(x.code)));
    assert.deepEqual(fullCopyTables(inventory(12, { tables })), ['"app"."shapes"']);
  });

  it('names unreadable tables and the grant that fixes it', function () {
    const f = runChecks(facts({ source: inventory(14, { tables: [table('secret', { readable: false })] }) })).find(
      (x) => x.code === 'source-unreadable',
    )!;
    assert.match(f.message, /"app"\."secret"/);
    assert.match(f.fix, /pg_read_all_data/);
  });

  it('names extensions the target lacks', function () {
    const f = runChecks(facts({ source: inventory(12, { ext: ['plpgsql', 'postgis'] }) })).find((x) => x.code === 'extension-missing')!;
    assert.match(f.message, /postgis/);
  });

  it('subscriptions of the source database are a warning: they are not copied', function () {
    const f = runChecks(facts({ source: inventory(12, { subs: ['from_billing'] }) })).find((x) => x.code === 'source-subscriptions')!;
    assert.equal(f.level, 'warning');
    assert.match(f.message, /from_billing/);
    assert.match(f.fix, /create_slot = false/);
    assert.ok(!runChecks(facts()).some((x) => x.code === 'source-subscriptions'));
  });

  it('a FOR ALL TABLES publication on the source is a warning when the target user is no superuser; table lists are not', function () {
    const pubs = [
      { name: 'cdc_all', wide: true },
      { name: 'cdc_orders', wide: false },
    ];
    const f = runChecks(facts({ source: inventory(12, { pubs }) })).find((x) => x.code === 'publication-needs-superuser')!;
    assert.equal(f.level, 'warning');
    assert.match(f.message, /cdc_all/);
    assert.doesNotMatch(f.message, /cdc_orders,|cdc_orders /);
    assert.match(f.fix, /superuser after the cutover/);
    const target = inventory(17);
    const su = { ...target, server: { ...target.server, isSuperuser: true } };
    assert.ok(!runChecks(facts({ source: inventory(12, { pubs }), target: su })).some((x) => x.code === 'publication-needs-superuser'));
  });

  it('refuses when the work directory is too small, and says how much is needed', function () {
    const src = inventory(12, { tables: [table('big', { bytes: 5 * 1024 ** 3 })] });
    assert.equal(estimateDumpBytes(src), 5 * 1024 ** 3);
    const f = runChecks(facts({ source: src, workDirFree: 1024 ** 3 })).find((x) => x.code === 'disk-space')!;
    assert.match(f.message, /5\.0 GiB/);
    assert.match(f.fix, /--work-dir/);
  });

  it('passes on client-tool errors for dump-restore', function () {
    const f = facts({
      tools: { error: 'pg_dump 15 is older than the source server (PostgreSQL 16)', fix: 'install postgresql-client-16' },
    });
    assert.ok(codes(f).includes('client-tools'));
  });

  it('warns when roles cannot be created, and errors when schemas cannot', function () {
    assert.ok(codes(facts({ target: inventory(17, { createRole: false }) }), 'warning').includes('target-no-createrole'));
    assert.ok(codes(facts({ target: inventory(17, { canCreate: false }) })).includes('target-no-create'));
  });

  it('bucardo: key-less tables are reported for a full copy at cutover, no replication right needed', function () {
    const src = inventory(12, { tables: [table('orders'), { ...table('schema_migrations'), primaryKey: [] }] });
    const found = runChecks(facts({ strategy: 'bucardo', source: { ...src, server: { ...src.server, canReplicate: false } } }));
    assert.ok(!hasErrors(found), found.map((x) => x.code).join(','));
    assert.match(found.find((x) => x.code === 'bucardo-full-copy')!.message, /schema_migrations/);
  });

  it('pglogical: extension, preload, superuser, workers, slots, output plugin allow-list and generated columns, each with its fix', function () {
    const ready = (major: number): Inventory => {
      const inv = inventory(major, { avail: ['plpgsql', 'citext', 'pglogical'] });
      return {
        ...inv,
        server: {
          ...inv.server,
          isSuperuser: true,
          settings: {
            ...inv.server.settings,
            shared_preload_libraries: 'pg_stat_statements, "pglogical"',
            max_worker_processes: '16',
            max_replication_slots: '10',
            max_wal_senders: '10',
          },
        },
      };
    };
    assert.deepEqual(codes(facts({ strategy: 'pglogical', source: ready(9.6), target: ready(12) })), []);
    const src = ready(9.6);
    const missing = inventory(12);
    const bad: Inventory = {
      ...src,
      server: {
        ...src.server,
        isSuperuser: false,
        settings: {
          ...src.server.settings,
          shared_preload_libraries: '',
          max_worker_processes: '2',
          output_plugin_libraries: 'pgoutput, test_decoding',
          max_replication_slots: '1',
        },
      },
      database: { ...src.database, generatedColumnTables: ['"app"."line_items"'] },
    };
    const found = runChecks(facts({ strategy: 'pglogical', source: bad, target: missing }));
    const byCode = new Map(found.map((x) => [x.code, x]));
    for (const code of [
      'pglogical-not-preloaded-source',
      'pglogical-privilege-source',
      'pglogical-workers-source',
      'pglogical-output-not-allowed',
      'no-free-slot',
      'pglogical-generated-columns',
      'pglogical-missing-target',
    ])
      assert.ok(byCode.has(code), `${code} in ${[...byCode.keys()].join(', ')}`);
    assert.match(byCode.get('pglogical-missing-target')!.fix, /apt-get install postgresql-12-pglogical/);
    assert.match(byCode.get('pglogical-output-not-allowed')!.fix, /pglogical_output/);
    assert.match(byCode.get('pglogical-generated-columns')!.fix, /--strategy logical/);
    assert.equal(
      runChecks(facts({ strategy: 'pglogical', source: inventory(9.3), target: ready(12) })).find((x) => x.level === 'error')?.code,
      'pglogical-source-too-old',
    );
  });

  it('logical: wal_level, replication privilege, free slots and subscription privilege, each with its fix', function () {
    const src = inventory(14);
    const bad = {
      ...src,
      server: {
        ...src.server,
        settings: { ...src.server.settings, wal_level: 'replica', max_replication_slots: '2', max_wal_senders: '10' },
        canReplicate: false,
        slotsUsed: 2,
      },
    };
    const tgt = inventory(17);
    const f = runChecks(
      facts({ strategy: 'logical', source: bad, target: { ...tgt, server: { ...tgt.server, canCreateSubscription: false } } }),
    );
    const byCode = new Map(f.map((x) => [x.code, x]));
    assert.match(byCode.get('wal-level')!.fix, /rds\.logical_replication = 1/);
    assert.match(byCode.get('no-replication-privilege')!.fix, /rds_replication/);
    assert.match(byCode.get('no-free-slot')!.message, /2 of max_replication_slots = 2/);
    assert.match(byCode.get('no-subscription-privilege')!.fix, /pg_create_subscription/);
    assert.ok(!byCode.has('no-free-wal-sender'));
  });

  it('logical: tables without a key are refused, or get REPLICA IDENTITY FULL when asked', function () {
    const src = inventory(12, { tables: [table('orders'), table('schema_migrations', { primaryKey: [], schema: 'public' })] });
    const ok = {
      ...src,
      server: { ...src.server, settings: { ...src.server.settings, max_replication_slots: '10', max_wal_senders: '10' } },
    };
    const refused = runChecks(facts({ strategy: 'logical', source: ok })).find((x) => x.code === 'no-replica-identity')!;
    assert.equal(refused.level, 'error');
    assert.match(refused.message, /"public"\."schema_migrations"/);
    assert.match(refused.fix, /--replica-identity-full/);
    const full = runChecks(facts({ strategy: 'logical', source: ok, replicaIdentityFull: true }));
    assert.equal(hasErrors(full), false, JSON.stringify(full.filter((x) => x.level === 'error')));
    assert.equal(full.find((x) => x.code === 'replica-identity-full')!.level, 'warning');
  });

  it('logical: a source older than 10 is pointed at pglogical', function () {
    const f = runChecks(facts({ strategy: 'logical', source: inventory(9.6) })).find((x) => x.code === 'logical-source-too-old')!;
    assert.match(f.fix, /pglogical/);
  });

  it('reads comma-separated settings such as shared_preload_libraries', function () {
    assert.deepEqual(settingList(' pg_stat_statements, "pglogical" ,'), ['pg_stat_statements', 'pglogical']);
    assert.deepEqual(settingList(undefined), []);
  });

  it('plan picks logical, then pglogical for a 9.6 source with the extension, then dump-restore', function () {
    const pgl = (major: number): Inventory => {
      const inv = inventory(major, { avail: ['plpgsql', 'citext', 'pglogical'] });
      return {
        ...inv,
        server: {
          ...inv.server,
          isSuperuser: true,
          settings: { ...inv.server.settings, shared_preload_libraries: 'pglogical', max_replication_slots: '10', max_wal_senders: '10' },
        },
      };
    };
    assert.equal(chooseStrategy(undefined, facts({ source: pgl(14), target: pgl(17) })).strategy, 'logical');
    const old = chooseStrategy(undefined, facts({ source: pgl(9.6), target: pgl(12) }));
    assert.equal(old.strategy, 'pglogical');
    assert.match(old.reason, /PostgreSQL 10 or newer/);
    assert.equal(chooseStrategy(undefined, facts({ source: inventory(9.6), target: inventory(12) })).strategy, 'dump-restore');
    assert.equal(chooseStrategy('bucardo', facts()).strategy, 'bucardo');
    const heroku = inventory(14);
    const noRepl = { ...heroku, server: { ...heroku.server, canReplicate: false } };
    const h = chooseStrategy(undefined, facts({ source: noRepl, target: inventory(17) }));
    assert.equal(h.strategy, 'bucardo');
    assert.match(h.reason, /may not replicate/);
  });
});
