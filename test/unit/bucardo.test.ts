import assert from 'node:assert/strict';
import { parseUrl } from '../../engine/conn';
import { controlDir, parseStatus } from '../../engine/strategies/bucardo/control';
import { bucardoNames } from '../../engine/strategies/bucardo/meta';
import { addDbArgs } from '../../engine/strategies/bucardo/sync';

describe('bucardo (pure parts)', function () {
  it('parses `bucardo status <sync>` into its fields, the last error included', function () {
    const text = [
      '======================================================================',
      'Last good                : Nov 22, 2026 22:41:13 (time to run: 1s)',
      'Sync name                : pf_sync',
      'Current state            : Bad',
      'Onetimecopy              : Yes',
      'Last error:              : Failed : DBD::Pg::db do failed: ERROR:  column "amount" is a generated column',
      '======================================================================',
    ].join('\n');
    const s = parseStatus(text);
    assert.equal(s.get('Current state'), 'Bad');
    assert.equal(s.get('Sync name'), 'pf_sync');
    assert.equal(s.get('Onetimecopy'), 'Yes');
    assert.match(s.get('Last error') ?? '', /^Failed : DBD::Pg.*generated column$/);
  });

  it('adds databases without a password on the command line (it goes in by SQL), with the TLS mode', function () {
    const c = parseUrl('postgresql://app:s3cret@db.example.com:5433/shop?sslmode=require', 'source');
    const args = addDbArgs('pgrelocate_x_src', c);
    assert.deepEqual(args.slice(0, 7), [
      'add',
      'db',
      'pgrelocate_x_src',
      'dbhost=db.example.com',
      'dbport=5433',
      'dbname=shop',
      'dbuser=app',
    ]);
    assert.ok(args.includes('conn=sslmode=require'));
    assert.ok(!args.join(' ').includes('s3cret'), 'no password in argv');
  });

  it('keeps one directory per control server, shared by its runs, whatever the host looks like', function () {
    assert.equal(controlDir('/w', { host: '10.0.0.5', port: 5432 }), '/w/pgrelocate-bucardo-10.0.0.5-5432');
    assert.equal(controlDir('/w', { host: '10.0.0.5', port: 5433 }), '/w/pgrelocate-bucardo-10.0.0.5-5433');
    // A socket directory or an IPv6 address becomes one safe path segment.
    assert.equal(controlDir('/w', { host: '/var/run/postgresql', port: 5432 }), '/w/pgrelocate-bucardo-_var_run_postgresql-5432');
    assert.equal(controlDir('/w', { host: '::1', port: 5432 }), '/w/pgrelocate-bucardo-__1-5432');
  });

  it('names its objects from the run id', function () {
    assert.deepEqual(bucardoNames('E63B8C52-4782-48c7-a70e-e990cb2326a4'), {
      sourceDb: 'pgrelocate_e63b8c524782_src',
      targetDb: 'pgrelocate_e63b8c524782_dst',
      relgroup: 'pgrelocate_e63b8c524782',
      sync: 'pgrelocate_e63b8c524782',
    });
  });
});
