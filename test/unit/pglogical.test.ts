import assert from 'node:assert/strict';
import { parseUrl } from '../../engine/conn';
import { conninfo } from '../../engine/streaming/subscription';
import { pglogicalNames } from '../../engine/strategies/pglogical/meta';
import { batchesOf, providerConn } from '../../engine/strategies/pglogical/sync';

describe('pglogical (pure parts)', function () {
  it('batches: tables in groups of N, or all at once', function () {
    assert.deepEqual(batchesOf([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]]);
    assert.deepEqual(batchesOf([1, 2, 3], 0), [[1, 2, 3]]);
    assert.deepEqual(batchesOf([], 3), []);
  });

  it('names: nodes and subscription from the run id, valid identifiers', function () {
    const n = pglogicalNames('6B10F7A3-6e64-45d3-b191-cfc64ce8fe94');
    assert.deepEqual(n, {
      providerNode: 'pgrelocate_6b10f7a36e64_provider',
      subscriberNode: 'pgrelocate_6b10f7a36e64_subscriber',
      subscription: 'pgrelocate_6b10f7a36e64',
    });
  });

  it('provider connection: asks for pglogical_output only where an allow-list exists and lacks it', function () {
    const c = parseUrl('postgresql://rep:s3cret@db.internal:5432/app?sslmode=require', 'source');
    // Every float digit, always (a provider before 12 prints 15 otherwise).
    assert.equal(providerConn(c, null).params['options'], '-c extra_float_digits=3');
    assert.equal(providerConn(c, 'pgoutput, pglogical_output').params['options'], '-c extra_float_digits=3');
    const asked = providerConn(c, 'pgoutput, test_decoding');
    assert.equal(asked.params['options'], '-c extra_float_digits=3 -c output_plugin_libraries=pgoutput,test_decoding,pglogical_output');
    assert.match(conninfo(asked), /options='-c extra_float_digits=3 -c output_plugin_libraries=pgoutput,test_decoding,pglogical_output'/);
    const more = providerConn({ ...c, params: { ...c.params, options: '-c statement_timeout=0' } }, 'pgoutput');
    assert.equal(
      more.params['options'],
      '-c statement_timeout=0 -c extra_float_digits=3 -c output_plugin_libraries=pgoutput,pglogical_output',
    );
  });
});
