import assert from 'node:assert/strict';
import { analyzeSql } from '../../engine/analyze';
import { dumpFailure, pgDumpArgs, pgRestoreArgs } from '../../engine/strategies/dump-restore/dump-restore';
import { defaultSettings, renderConf } from '../../engine/local/cluster';
import { parsePasswd } from '../../engine/local/os-user';
import { chooseStrategy, dumpRestoreSteps, estimateBlackout } from '../../engine/plan';
import { formatEvent, formatLiveness, formatStepStatus } from '../../engine/report';
import { ProgressMeter, runSteps, type RunEvent, type StepResult } from '../../engine/runner';
import { pgpassLines, sweepPassfiles, toolCommand, toolEnv, withoutSecrets } from '../../engine/tool-exec';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { chooseClientTools, installHint, parseToolVersion, type ClientTools } from '../../engine/tools';
import { PgrelocateError } from '../../engine/errors';
import { formatBytes, formatDuration, parseSize } from '../../engine/units';
import { packageList } from '../../scripts/ensure-debian';
import { rowCounts } from '../../scripts/sample-db';
import { parseUrl } from '../../engine/conn';
import { propertyStatements, setClause } from '../../engine/database-settings';
import { asRecord, permanentFenceSql, unfenceSql, type FenceRecord } from '../../engine/streaming/fence';
import { tableKey } from '../../engine/verify';
import { findEntry, pointEntry } from '../../engine/streaming/pgbouncer';
import { applyErrorIn } from '../../engine/streaming/subscription';
import { describeChange, schemaDrift, type ShapeRow } from '../../engine/streaming/schema-drift';

describe('pure helpers', function () {
  it('statistics: VACUUM (ANALYZE) where asked, but a partitioned parent (no storage) only ANALYZE', function () {
    assert.equal(analyzeSql({ q: '"app"."orders"', kind: 'r' }, true), 'VACUUM (ANALYZE) "app"."orders"');
    assert.equal(analyzeSql({ q: '"audit"."page_views"', kind: 'p' }, true), 'ANALYZE "audit"."page_views"');
    assert.equal(analyzeSql({ q: '"app"."orders"', kind: 'r' }, false), 'ANALYZE "app"."orders"');
    assert.equal(analyzeSql({ q: '"billing"."daily_revenue"', kind: 'm' }, false), 'ANALYZE "billing"."daily_revenue"');
  });

  it('sizes and durations', function () {
    assert.equal(parseSize('300MB'), 300 * 1024 ** 2);
    assert.equal(parseSize('1.5 GiB'), 1.5 * 1024 ** 3);
    assert.equal(parseSize('4096'), 4096);
    assert.throws(() => parseSize('lots'), /512MB, 2GB/);
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(formatDuration(3.14159), '3.14s');
    assert.equal(formatDuration(75.2), '1m15.2s');
    assert.equal(formatDuration(3 * 3600 + 61), '3h01m1s');
  });

  it('client tool versions and install hints', function () {
    assert.deepEqual(parseToolVersion('pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)'), {
      major: 15,
      version: '15.18 (Debian 15.18-0+deb12u1)',
    });
    assert.equal(parseToolVersion('pg_dump (PostgreSQL) 9.6.24')!.major, 9.6);
    assert.match(installHint(17), /postgresql-client-17/);
  });

  it('client tools chosen for a source: the first set (newest, or PGRELOCATE_PG_BINDIR) at or above its major', function () {
    const set = (major: number, bindir: string): ClientTools => ({
      major,
      version: `${major}.1`,
      bindir,
      pgDump: `${bindir}/pg_dump`,
      pgDumpAll: `${bindir}/pg_dumpall`,
      pgRestore: `${bindir}/pg_restore`,
    });
    const found = [set(14, '/opt/pg14'), set(17, '/usr/lib/postgresql/17/bin'), set(15, '/usr/lib/postgresql/15/bin')];
    assert.equal(chooseClientTools(found, 12).bindir, '/opt/pg14');
    assert.equal(chooseClientTools(found, 16).bindir, '/usr/lib/postgresql/17/bin');
    assert.throws(
      () => chooseClientTools(found, 18),
      (e: unknown) => e instanceof PgrelocateError && e.code === 'client-tools-too-old' && /postgresql-client-18/.test(e.fix),
    );
    assert.throws(
      () => chooseClientTools([], 16),
      (e: unknown) => e instanceof PgrelocateError && e.code === 'no-client-tools',
    );
  });

  it('passfile lines escape colons and backslashes, and the tool environment drops libpq variables', function () {
    const c = parseUrl('postgresql://u:pa%3As%5Cs@h:5433/db');
    assert.equal(pgpassLines([c], {}), 'h:5433:*:u:pa\\:s\\\\s\n');
    // Without a password in the URL: PGPASSWORD, as libpq would use it.
    assert.equal(pgpassLines([{ ...c, password: undefined }], { PGPASSWORD: 'envpw' }), 'h:5433:*:u:envpw\n');
    const env = toolEnv('/tmp/pass', { PATH: '/bin', PGPASSWORD: 'leak', PGHOST: 'elsewhere' });
    assert.equal(env['PGPASSWORD'], undefined);
    assert.equal(env['PGHOST'], undefined);
    assert.equal(env['PGPASSFILE'], '/tmp/pass');
    assert.equal(env['PATH'], '/bin');
    // Probes and hooks: the user's environment less the passwords pgrelocate was given.
    assert.deepEqual(
      withoutSecrets({
        PATH: '/bin',
        PGRELOCATE_SOURCE_URL: 'postgresql://u:pw@h/d',
        PGRELOCATE_TARGET_URL: 'x',
        PGRELOCATE_BUCARDO_URL: 'y',
        PGPASSWORD: 'p',
        HOME: '/h',
      }),
      { PATH: '/bin', HOME: '/h' },
    );
  });

  it('status: a running step with its recorded progress; a dead run, a streaming one and a fence, each with what to do', function () {
    const step = {
      name: 'copy',
      status: 'running' as const,
      startedAt: '2026-12-03T10:00:00.000Z',
      finishedAt: null,
      detail: null,
      progress: {
        done: 300 * 1024 ** 2,
        total: 1200 * 1024 ** 2,
        unit: 'bytes' as const,
        etaSeconds: 30,
        rate: 10 * 1024 ** 2,
        note: 'app.orders [2/4]',
        at: '2026-12-03T10:00:30.000Z',
      },
    };
    assert.equal(
      formatStepStatus(step, Date.parse('2026-12-03T10:00:32.000Z')),
      '  copy               running: 300.0 MiB of 1.2 GiB (25%), 10.0 MiB/s, ETA 30.0s — app.orders [2/4] (2.00s ago)',
    );
    const run = { status: 'running', strategy: 'logical', holder: null };
    assert.match(formatLiveness({ ...run, meta: { phase: 'copy' } }).join('\n'), /stopped\. Continue with: pgrelocate sync \(resumes it\)/);
    assert.match(
      formatLiveness({ ...run, meta: { phase: 'streaming' } }).join('\n'),
      /no pgrelocate process is needed\. Next: pgrelocate cutover/,
    );
    const fenced = formatLiveness({ ...run, meta: { phase: 'streaming', fence: { database: 'd' } } }).join('\n');
    assert.match(fenced, /source is FENCED.*cleanup --unfence/);
    assert.doesNotMatch(fenced, /no pgrelocate process is needed/);
    // A held fence names itself by whether its process is alive: live, writers wait; dead, it ended with its session.
    const holder = { holder: 'pgrelocate cutover pid 7 on w1', since: 't0', pid: 9 };
    const heldFence = { phase: 'cutover', fence: { database: 'd', state: 'held' } };
    assert.match(
      formatLiveness({ ...run, holder, meta: heldFence }).join('\n'),
      /holds its write fence: writers on the source wait; it lifts by itself/,
    );
    const dead = formatLiveness({ ...run, meta: heldFence }).join('\n');
    assert.match(dead, /stopped inside its write fence, which ended with its session: the source is writable/);
    assert.match(dead, /Continue with: pgrelocate cutover/);
    assert.doesNotMatch(dead, /FENCED/);
    assert.match(
      formatLiveness({ ...run, meta: { phase: 'switched', fence: { database: 'd', state: 'permanent' } } }).join('\n'),
      /source is FENCED.*Finish with: pgrelocate cutover/,
    );
    assert.match(
      formatLiveness({ ...run, holder: { holder: 'pgrelocate sync pid 7 on w1', since: 't0', pid: 9 }, meta: { phase: 'copy' } }).join(
        '\n',
      ),
      /in progress: pgrelocate sync pid 7 on w1, connected since t0/,
    );
  });

  it('a full local disk during the dump is named as such, and no failure claims the target is untouched', function () {
    const full = dumpFailure(1, 'pg_dump: error: could not write to file "/w/d/3456.dat": No space left on device', '/w', 3 * 1024 ** 3);
    assert.equal(full.code, 'disk-full');
    assert.match(full.message, /disk under \/w filled up/);
    assert.match(full.fix, /--work-dir on a disk with at least 3\.0 GiB free/);
    const other = dumpFailure(1, 'pg_dump: error: query failed: ERROR:  permission denied for table t', '/w', 1);
    assert.equal(other.code, 'dump-failed');
    assert.doesNotMatch(other.fix, /nothing was written/);
  });

  it('tools end with pgrelocate (setpriv --pdeathsig), and passfiles of dead pgrelocate processes are swept', async function () {
    assert.deepEqual(toolCommand('/usr/bin/pg_restore', ['-j', '2'], '/usr/bin/setpriv'), [
      '/usr/bin/setpriv',
      ['--pdeathsig', 'TERM', '--', '/usr/bin/pg_restore', '-j', '2'],
    ]);
    assert.deepEqual(toolCommand('/usr/bin/pg_restore', ['-j', '2'], null), ['/usr/bin/pg_restore', ['-j', '2']]);
    const child = execa(process.execPath, ['-e', '0']);
    const deadPid = child.pid!;
    await child;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pgrelocate-unit-sweep-'));
    try {
      for (const pid of [deadPid, process.pid]) mkdirSync(path.join(dir, `pgrelocate-pass-${pid}-abc`));
      assert.deepEqual(sweepPassfiles(dir), [`pgrelocate-pass-${deadPid}-abc`]);
      assert.deepEqual(readdirSync(dir), [`pgrelocate-pass-${process.pid}-abc`]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('pg_dump and pg_restore arguments carry no password, and follow the source version', function () {
    const source = parseUrl('postgresql://u:secret@h:5432/db');
    const args = pgDumpArgs({ source, dumpDir: '/d', opts: { jobs: 4, compress: 0 }, sourceVersionNum: 120000, sourceInRecovery: false });
    assert.ok(args.includes('-Fd') && args.includes('4') && args.includes('--exclude-schema=pgrelocate'));
    assert.ok(!args.join(' ').includes('secret'));
    assert.ok(!args.includes('--no-synchronized-snapshots'));
    assert.ok(
      pgDumpArgs({ source, dumpDir: '/d', opts: { jobs: 4, compress: 0 }, sourceVersionNum: 90600, sourceInRecovery: true }).includes(
        '--no-synchronized-snapshots',
      ),
    );
    const r = pgRestoreArgs({ target: source, dumpDir: '/d', opts: { jobs: 2, force: true, noOwner: true, noPrivileges: false } });
    assert.ok(r.includes('--clean') && r.includes('--if-exists') && r.includes('--no-owner') && !r.includes('--no-privileges'));
    assert.equal(r[r.length - 1], '/d');
    assert.ok(
      !pgRestoreArgs({ target: source, dumpDir: '/d', opts: { jobs: 2, force: false, noOwner: false, noPrivileges: false } }).includes(
        '--clean',
      ),
    );
  });

  it('local server settings: logical WAL, loopback only, durable on request', function () {
    const s = defaultSettings(5555, '/tmp/x', false);
    assert.equal(s['wal_level'], 'logical');
    assert.equal(s['listen_addresses'], '127.0.0.1');
    assert.equal(s['fsync'], false);
    assert.equal(defaultSettings(5555, '/tmp/x', true)['fsync'], true);
    assert.equal(renderConf({ a: 1, b: true, c: "it's" }), "a = 1\nb = on\nc = 'it''s'\n");
  });

  it('reads /etc/passwd', function () {
    assert.deepEqual(parsePasswd('root:x:0:0:root:/root:/bin/bash\npostgres:x:101:104::/var/lib/postgresql:/bin/bash\n'), [
      { name: 'root', uid: 0, gid: 0 },
      { name: 'postgres', uid: 101, gid: 104 },
    ]);
  });

  it('the Debian package list ignores comments', function () {
    assert.deepEqual(packageList('# x\npostgresql-15\n\nbucardo # later\n'), ['postgresql-15', 'bucardo']);
  });

  it('sample row counts scale with the size knob', function () {
    assert.equal(rowCounts(10)['orders'], 3000);
    assert.equal(rowCounts(0)['users'], 100);
  });

  it('plan: dump-restore with its six steps', function () {
    assert.equal(chooseStrategy(undefined).strategy, 'dump-restore');
    assert.deepEqual(
      dumpRestoreSteps(3).map((s) => s.name),
      ['globals', 'dump', 'restore', 'database-settings', 'vacuum-analyze', 'verify'],
    );
  });

  it('the runner times steps, stops at the first failure and reports which', async function () {
    const events: RunEvent[] = [];
    const ran: string[] = [];
    const steps = ['a', 'b', 'c'].map((name) => ({
      name,
      run: async () => {
        ran.push(name);
        if (name === 'b') throw new Error('boom');
        return { name };
      },
    }));
    const results: StepResult[] = [];
    await assert.rejects(
      runSteps(steps, {}, (e) => events.push(e), undefined, results),
      /boom/,
    );
    assert.deepEqual(
      results.map((s) => [s.name, s.status]),
      [
        ['a', 'done'],
        ['b', 'failed'],
      ],
    );
    assert.deepEqual(ran, ['a', 'b']);
    assert.match(events.map(formatEvent).join('\n'), /✗ b/);
  });

  it('progress carries an ETA', function () {
    const events: RunEvent[] = [];
    const m = new ProgressMeter((e) => events.push(e), 'dump', 1000, 'bytes', 0);
    m.update(500, 'orders', true);
    const e = events[0]!;
    assert.equal(e.type, 'progress');
    assert.match(formatEvent(e), /dump: 500 B \/ 1000 B 50%/);
  });
});

describe('the write fence', function () {
  const record: FenceRecord = {
    runId: 'r1',
    database: 'shop db',
    databaseValue: null,
    roles: [
      { role: 'app', value: null },
      { role: 'Reporter', value: 'off' },
    ],
    tables: ['"app"."orders"', '"Odd"."t;x"'],
    movedTo: 'postgresql://new:5432/shop',
    state: 'held',
  };

  it('made permanent in one transaction: a refusing trigger on every table for every kind of write, the read-only default, the record', function () {
    const sql = permanentFenceSql(record).split(';\n');
    for (const t of record.tables) {
      assert.ok(
        sql.includes(
          `CREATE TRIGGER pgrelocate_fence BEFORE INSERT OR UPDATE OR DELETE ON ${t} FOR EACH ROW EXECUTE PROCEDURE pgrelocate.refuse_write()`,
        ),
      );
      assert.ok(
        sql.includes(
          `CREATE TRIGGER pgrelocate_fence_truncate BEFORE TRUNCATE ON ${t} FOR EACH STATEMENT EXECUTE PROCEDURE pgrelocate.refuse_write()`,
        ),
      );
    }
    assert.ok(sql.includes('ALTER DATABASE "shop db" SET default_transaction_read_only = on'));
    assert.ok(sql.includes('ALTER ROLE "Reporter" IN DATABASE "shop db" SET default_transaction_read_only = on'));
    const comment = sql.find((x) => x.startsWith('COMMENT ON FUNCTION'))!;
    assert.equal(JSON.parse(comment.slice(comment.indexOf("'") + 1, -1).replace(/''/g, "'")).state, 'permanent');
  });

  it('a table named by quote_ident or by ident is the same key to verification', function () {
    assert.equal(tableKey('app.orders'), '"app"."orders"');
    assert.equal(tableKey('"app"."orders"'), '"app"."orders"');
    assert.equal(tableKey('"We""ird"."t.x"'), '"We""ird"."t.x"');
    assert.equal(tableKey('public."Mixed Case"'), '"public"."Mixed Case"');
  });

  it('lifted exactly: earlier values put back, triggers gone with their function; a record of an earlier version reads as settings only', function () {
    const sql = unfenceSql(record, true).split(';\n');
    assert.deepEqual(sql, [
      'ALTER DATABASE "shop db" RESET default_transaction_read_only',
      'ALTER ROLE "app" IN DATABASE "shop db" RESET default_transaction_read_only',
      `ALTER ROLE "Reporter" IN DATABASE "shop db" SET default_transaction_read_only = 'off'`,
      'DROP FUNCTION pgrelocate.refuse_write() CASCADE',
    ]);
    const old = asRecord({ database: 'd', databaseValue: 'off', roles: [], terminated: 2 })!;
    assert.equal(old.state, 'permanent');
    assert.deepEqual(old.tables, []);
    assert.deepEqual(unfenceSql(old, false).split(';\n'), [`ALTER DATABASE "d" SET default_transaction_read_only = 'off'`]);
    assert.equal(asRecord(null), null);
  });
});

describe("PgBouncer's configuration", function () {
  const ini = [
    '; pools',
    '[databases]',
    "shop = host=10.0.0.5 port=5432 dbname=shop user=app pool_size=20 application_name='my app'",
    '"Odd Name" = host=10.0.0.5 dbname=odd',
    '* = host=10.0.0.9',
    '',
    '[pgbouncer]',
    'shop = not a database line',
    'listen_port = 6432',
  ].join('\n');

  it('finds a database by its entry in [databases] only, quoted names too, never the fallback', function () {
    assert.equal(findEntry(ini, 'shop')!.line, 2);
    assert.equal(findEntry(ini, 'shop')!.pairs.get('application_name'), "'my app'");
    assert.equal(findEntry(ini, 'Odd Name')!.line, 3);
    assert.equal(findEntry(ini, 'other'), null);
  });

  it('points an entry at the target, keeping its other settings and every other line', function () {
    const out = pointEntry(ini, 'shop', { host: 'new-db.internal', port: 5433, dbname: "o'brien" });
    const lines = out.split('\n');
    assert.equal(lines[2], "shop = host=new-db.internal port=5433 dbname='o\\'brien' user=app pool_size=20 application_name='my app'");
    assert.deepEqual(
      lines.filter((_, i) => i !== 2),
      ini.split('\n').filter((_, i) => i !== 2),
    );
    assert.equal(findEntry(out, 'shop')!.pairs.get('port'), '5433');
    assert.throws(() => pointEntry(ini, 'other', { host: 'h', port: 1, dbname: 'd' }), /no entry for other/);
  });
});

describe('schema changes on the source during a sync', function () {
  const row = (kind: ShapeRow['kind'], tbl: string, name: string, def: string): ShapeRow => ({ kind, tbl, name, def });
  const orders = [
    row('table', 'app.orders', '', 'table'),
    row('column', 'app.orders', 'id', 'integer NOT NULL'),
    row('column', 'app.orders', 'total', 'numeric(10,2)'),
    row('index', 'app.orders', 'orders_pkey', 'CREATE UNIQUE INDEX orders_pkey ON app.orders USING btree (id)'),
  ];
  it('names what the source gained, lost or changed since the start and the target lacks; a new table once, not each column', function () {
    const now = [
      ...orders.filter((r) => r.name !== 'orders_pkey').map((r) => (r.name === 'total' ? { ...r, def: 'numeric(12,2)' } : r)),
      row('column', 'app.orders', 'note', 'text'),
      row('table', 'app.coupons', '', 'table'),
      row('column', 'app.coupons', 'id', 'integer NOT NULL'),
      row('table', 'app.orders_2027', '', 'table'),
    ];
    const changes = schemaDrift(orders, now, orders);
    assert.deepEqual(changes.map(describeChange).sort(), [
      'app.orders: column total changed: numeric(10,2) → numeric(12,2)',
      'app.orders: index orders_pkey dropped on the source',
      'app.orders: new column note text',
      'new table app.coupons: created on the source after the copy, not replicated',
      'new table app.orders_2027: created on the source after the copy, not replicated',
    ]);
    assert.deepEqual(
      changes
        .filter((c) => c.additive)
        .map((c) => c.row.name || c.row.tbl)
        .sort(),
      ['app.coupons', 'app.orders_2027', 'note'],
    );
    // Made on the target too: nothing left to name. A column of another type there is not the change.
    assert.deepEqual(schemaDrift(orders, now, now), []);
    const wrongType = now.map((r) => (r.name === 'note' ? { ...r, def: 'varchar(10)' } : r));
    assert.deepEqual(schemaDrift(orders, now, wrongType).map(describeChange), ['app.orders: new column note text']);
    assert.deepEqual(schemaDrift(orders, orders, orders), [], 'no change, nothing named');
  });
});

describe("the apply error, read from the target's log", function () {
  it('finds the last apply error with its detail and what was being applied, and nothing in a log without one', function () {
    const log = [
      '2026-12-07 08:30:00.101 UTC [1233] LOG:  logical replication apply worker for subscription "pgrelocate_ab" has started',
      '2026-12-07 08:30:00.123 UTC [1233] ERROR:  duplicate key value violates unique constraint "accounts_pkey"',
      '2026-12-07 08:30:00.123 UTC [1233] DETAIL:  Key (id)=(990001) already exists.',
      '2026-12-07 08:30:00.123 UTC [1233] CONTEXT:  processing remote data for replication origin "pg_16390" during message type "INSERT" for replication target relation "app.accounts" in transaction 752, finished at 0/1A2B3C8',
      '2026-12-07 08:30:00.125 UTC [99] LOG:  background worker "logical replication apply worker" (PID 1233) exited with exit code 1',
      '2026-12-07 08:30:01.002 UTC [1240] ERROR:  relation "app.nope" does not exist at character 15',
      '2026-12-07 08:30:01.002 UTC [1240] STATEMENT:  SELECT * FROM app.nope',
    ].join('\n');
    assert.equal(
      applyErrorIn(log),
      'duplicate key value violates unique constraint "accounts_pkey"; Key (id)=(990001) already exists.; processing remote data for replication origin "pg_16390" during message type "INSERT" for replication target relation "app.accounts" in transaction 752, finished at 0/1A2B3C8',
    );
    // Before 14 the apply's errors carry no CONTEXT; the missing column names logical replication itself.
    assert.equal(
      applyErrorIn(
        '2026-12-07 08:31:00 UTC [7] ERROR:  logical replication target relation "app.accounts" is missing replicated column: "nickname"',
      ),
      'logical replication target relation "app.accounts" is missing replicated column: "nickname"',
    );
    assert.equal(applyErrorIn(log.split('\n').slice(5).join('\n')), null);
  });
});

describe('the expected blackout', function () {
  it('grows with what the fence copies and the tables it marks, not with the data replication carries', function () {
    const small = estimateBlackout({ tables: 40, sequences: 10, copiedBytes: 0, largeObjects: 0 });
    assert.ok(small.seconds > 0.1 && small.seconds < 0.3, `${small.seconds}`);
    assert.deepEqual(
      small.parts.map((p) => p.what),
      ['lock, final LSN, commit', 'triggers on 40 tables', '10 sequences'],
    );
    // 5,000 tables: the triggers are measured at 390 ms with their locks.
    assert.ok(estimateBlackout({ tables: 5000, sequences: 0, copiedBytes: 0, largeObjects: 0 }).seconds < 1);
    const heavy = estimateBlackout({ tables: 40, sequences: 10, copiedBytes: 600e6, largeObjects: 1000 });
    assert.ok(heavy.seconds > 10, 'copying 600 MB inside the fence is named as what makes it long');
    assert.ok(
      heavy.parts.some((p) => /572\.2 MiB copied again whole/.test(p.what)),
      JSON.stringify(heavy.parts),
    );
    // Pre-copied before the fence: 600 MB of unlogged tables and 10,000 large objects are only checked inside it.
    const precopied = estimateBlackout({ tables: 40, sequences: 10, copiedBytes: 0, scannedBytes: 600e6, largeObjects: 10000 });
    assert.ok(precopied.seconds < 3, `${precopied.seconds}`);
    assert.ok(
      precopied.parts.some((p) => p.what === '10000 large objects checked'),
      JSON.stringify(precopied.parts),
    );
  });
});

describe('database properties', function () {
  it('quotes plain settings, and writes list settings as stored', function () {
    assert.equal(setClause('work_mem=8MB'), `SET "work_mem" TO '8MB'`);
    assert.equal(setClause('search_path=app, public, "$user"'), `SET "search_path" TO app, public, "$user"`);
    assert.equal(setClause('default_text_search_config=pg_catalog.english'), `SET "default_text_search_config" TO 'pg_catalog.english'`);
  });

  it('builds ALTER DATABASE, ALTER ROLE … IN DATABASE, COMMENT and grants for the target name', function () {
    const st = propertyStatements('shop new', {
      settings: [
        { role: null, entries: ['work_mem=8MB', 'default_transaction_read_only=on'] },
        { role: 'app', entries: ['statement_timeout=30s'] },
      ],
      comment: "it's ours",
      grants: [
        { grantee: 'app', privilege: 'CONNECT', grantable: false },
        { grantee: null, privilege: 'TEMPORARY', grantable: false },
      ],
    });
    assert.deepEqual(st, [
      `ALTER DATABASE "shop new" SET "work_mem" TO '8MB'`,
      `ALTER ROLE "app" IN DATABASE "shop new" SET "statement_timeout" TO '30s'`,
      `COMMENT ON DATABASE "shop new" IS 'it''s ours'`,
      'REVOKE ALL ON DATABASE "shop new" FROM PUBLIC',
      'GRANT CONNECT ON DATABASE "shop new" TO "app"',
      'GRANT TEMPORARY ON DATABASE "shop new" TO PUBLIC',
    ]);
    assert.deepEqual(propertyStatements('x', { settings: [], comment: null, grants: [] }), []);
    // default_transaction_read_only (a cutover's fence, a dump's stopped writes) is left out above.
  });
});
