import assert from 'node:assert/strict';
import { classify, markResumed, parseRestoreErrors, type RestoreError } from '../../engine/restore-errors';
import { firstPassArgs, splitSchemaEntries, withList } from '../../engine/schemas-first';

const STDERR = `pg_restore: connecting to database for restore
pg_restore: creating SCHEMA "public"
pg_restore: while PROCESSING TOC:
pg_restore: from TOC entry 5; 2615 2200 SCHEMA public postgres
pg_restore: error: could not execute query: ERROR:  schema "public" already exists
Command was: CREATE SCHEMA public;


pg_restore: from TOC entry 4411; 0 0 COMMENT EXTENSION plpgsql
pg_restore: error: could not execute query: ERROR:  must be owner of extension plpgsql
Command was: COMMENT ON EXTENSION plpgsql IS 'PL/pgSQL procedural language';

pg_restore: from TOC entry 215; 1259 16390 TABLE orders app
pg_restore: error: could not execute query: ERROR:  role "app" does not exist
Command was: ALTER TABLE app.orders OWNER TO app;

pg_restore: finished item 3000 TABLE DATA orders
pg_restore: warning: errors ignored on restore: 3
`;

describe('pg_restore error classification', function () {
  it('parses each error with its TOC entry and command', function () {
    const errs = parseRestoreErrors(STDERR);
    assert.equal(errs.length, 3);
    assert.deepEqual(
      errs.map((e) => [e.message, e.expected]),
      [
        ['schema "public" already exists', true],
        ['must be owner of extension plpgsql', true],
        ['role "app" does not exist', false],
      ],
    );
    assert.equal(errs[2]!.command, 'ALTER TABLE app.orders OWNER TO app;');
    assert.equal(errs[2]!.tocEntry, 'TOC entry 215; 1259 16390 TABLE orders app');
  });

  it('treats the seed-000 "already exists" errors as expected, and other ones as real', function () {
    for (const m of [
      'role "aptible" already exists',
      'role "postgres" already exists',
      'database "db" already exists',
      'extension "citext" already exists',
    ]) {
      assert.equal(classify(`ERROR:  ${m}`, null).expected, true, m);
    }
    assert.equal(classify('relation "orders" already exists', 'CREATE TABLE orders ()').expected, false);
    assert.equal(classify('duplicate key value violates unique constraint "x"', 'COPY x').expected, false);
    assert.equal(classify('permission denied', "COMMENT ON EXTENSION citext IS 'x'").expected, true);
  });

  it('a connection failure is a real error', function () {
    const errs = parseRestoreErrors('pg_restore: error: connection to server at "h" (1.2.3.4), port 5432 failed: timeout expired');
    assert.equal(errs.length, 1);
    assert.equal(errs[0]!.expected, false);
  });

  it('on a resumed run, objects the interrupted attempt created are expected; nothing else is, and nothing is on a fresh run', function () {
    const err = (message: string): RestoreError => ({ message, command: null, tocEntry: null, expected: false, reason: null });
    const errors = [
      err('relation "orders_user_idx" already exists'),
      err('multiple primary keys for table "customers" are not allowed'),
      err('relation "orders" is already member of publication "cdc_orders"'),
      err('column "v" does not exist'),
    ];
    assert.deepEqual(
      markResumed(errors, true).map((e) => e.expected),
      [true, true, true, false],
    );
    assert.ok(markResumed(errors, false).every((e) => !e.expected));
  });

  it("an object the source service's own role owned keeps the target's owner; any other ownership failure is real", function () {
    const rds = classify('must be able to SET ROLE "rdsadmin"', 'ALTER SCHEMA public OWNER TO rdsadmin;');
    assert.equal(rds.expected, true);
    assert.match(rds.reason ?? '', /rdsadmin/);
    assert.equal(classify('must be able to SET ROLE "app_owner"', 'ALTER TABLE app.t OWNER TO app_owner;').expected, false);
    assert.equal(classify('permission denied for schema app', 'ALTER TABLE app.t OWNER TO rdsadmin;').expected, false);
  });

  it('schemas and their grants are restored first, the rest after; the first pass runs alone and without --clean', function () {
    const list = [
      ';',
      '; Archive created at …',
      '6; 2615 16386 SCHEMA - app master',
      '3252; 0 0 COMMENT - SCHEMA app master',
      '3253; 0 0 ACL - SCHEMA app master',
      '210; 1259 16387 TABLE app t app_owner',
      '3255; 0 0 ACL app TABLE t app_owner',
    ].join('\n');
    assert.deepEqual(splitSchemaEntries(list), {
      first: ['6; 2615 16386 SCHEMA - app master', '3253; 0 0 ACL - SCHEMA app master'],
      rest: ['3252; 0 0 COMMENT - SCHEMA app master', '210; 1259 16387 TABLE app t app_owner', '3255; 0 0 ACL app TABLE t app_owner'],
    });
    assert.equal(
      splitSchemaEntries('6; 2615 16386 SCHEMA - app master\n210; 1259 16387 TABLE app t app_owner'),
      null,
      'no schema grants: one pass',
    );
    const main = ['-Fd', '-j', '4', '-v', '--clean', '--if-exists', '-d', 'postgresql://u@h/db', '/dump'];
    assert.deepEqual(firstPassArgs(main, '/dump.schemas.list'), [
      '-Fd',
      '-v',
      '-d',
      'postgresql://u@h/db',
      '-L',
      '/dump.schemas.list',
      '/dump',
    ]);
    assert.deepEqual(withList(main, '/dump.rest.list').slice(-3), ['-L', '/dump.rest.list', '/dump']);
  });
});
