import assert from 'node:assert/strict';
import { median, stepSeconds } from '../../bench/run';
import { pgbenchScale, smallTables, wideRows } from '../../bench/shapes';
import { parseTopologies, tbfArgs } from '../../bench/topology';

describe('bench (pure parts)', function () {
  it("splits pgrelocate's wall time into its steps and the time outside them (start-up, inspection, exit)", function () {
    const report = {
      seconds: 4.6,
      steps: [
        { name: 'copy', seconds: 2.9 },
        { name: 'schema-post-data', seconds: 1.0 },
        { name: 'verify', seconds: 0.4 },
      ],
    };
    const s = stepSeconds(report, 5.0);
    assert.equal(s['copy'], 2.9);
    assert.equal(s['verify'], 0.4);
    assert.ok(Math.abs(s['outside steps']! - 0.7) < 1e-9, String(s['outside steps']));
    // A wall time shorter than the steps (clock skew between the two) is no negative time.
    assert.equal(stepSeconds(report, 4.0)['outside steps'], 0);
    assert.equal(median([3, 1, 2]), 2);
  });

  it('sizes each shape from --scale, with floors that keep the shape what it is', function () {
    // pgbench: 100,000 accounts (about 15 MB) per scale unit.
    assert.equal(pgbenchScale(450e6), 30);
    assert.equal(pgbenchScale(1e6), 1);
    // Many small tables: a thousand at least, twenty thousand at most.
    assert.equal(smallTables(100e6), 2500);
    assert.equal(smallTables(1e6), 1000);
    assert.equal(smallTables(10e9), 20000);
    assert.equal(wideRows(1e9), 10000);
    assert.equal(wideRows(1e6), 100);
  });

  it("reads topologies: one-box, one round trip for both links, or the source's and the target's; refuses anything else with the fix", function () {
    assert.deepEqual(parseTopologies('one-box, netns:1ms,netns:20ms/1ms,netns:0.5ms'), [
      { name: 'one-box', links: null },
      { name: 'netns:1ms', links: { sourceRttMs: 1, targetRttMs: 1 } },
      { name: 'netns:20ms/1ms', links: { sourceRttMs: 20, targetRttMs: 1 } },
      { name: 'netns:0.5ms', links: { sourceRttMs: 0.5, targetRttMs: 0.5 } },
    ]);
    for (const bad of ['netns', 'netns:20', 'wan', 'netns:1ms/'])
      assert.throws(() => parseTopologies(bad), /Unknown topology .*Fix: --topology one-box/);
  });

  it('caps each end of a link with a token bucket whose burst and queue shape rather than drop', function () {
    assert.deepEqual(tbfArgs('pgrb1s', '1gbit'), [
      'qdisc',
      'replace',
      'dev',
      'pgrb1s',
      'root',
      'tbf',
      'rate',
      '1gbit',
      'burst',
      '256kb',
      'latency',
      '50ms',
    ]);
  });
});
