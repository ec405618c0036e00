import assert from 'node:assert/strict';
import { splitSql } from '../../engine/sql-split';

describe('splitSql', function () {
  it('splits statements and keeps quoted semicolons, dollar quotes and comments intact', function () {
    const script = [
      '--',
      '-- PostgreSQL database cluster dump',
      '--',
      'SET default_transaction_read_only = off;',
      '\\connect template1',
      'CREATE ROLE "we;ird";',
      "ALTER ROLE \"we;ird\" WITH LOGIN PASSWORD 'a;b''c';",
      "COMMENT ON ROLE x IS E'semi\\'; colon';",
      'DO $tag$ BEGIN PERFORM 1; END $tag$;',
      '/* block; comment */ SELECT 1;',
      'SELECT $$a;b$$',
    ].join('\n');
    assert.deepEqual(splitSql(script), [
      'SET default_transaction_read_only = off;',
      'CREATE ROLE "we;ird";',
      "ALTER ROLE \"we;ird\" WITH LOGIN PASSWORD 'a;b''c';",
      "COMMENT ON ROLE x IS E'semi\\'; colon';",
      'DO $tag$ BEGIN PERFORM 1; END $tag$;',
      '/* block; comment */ SELECT 1;',
      'SELECT $$a;b$$',
    ]);
  });

  it('returns nothing for comments only', function () {
    assert.deepEqual(splitSql('-- a\n-- b\n'), []);
  });
});
