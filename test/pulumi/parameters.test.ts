/**
 * The RDS parameter sets checked against PostgreSQL itself: every parameter
 * exists in each major this machine has (`postgres --describe-config`), a
 * static one (context postmaster) is `pending-reboot` and a dynamic one
 * `immediate`, numeric values are within the server's range, and the phase
 * change (sync → cutover) changes no static parameter: it never needs a reboot.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { execa } from 'execa';
import { availableMajors, findServerBinaries } from '../../engine/local/binaries';
import {
  parameterGroupFamily,
  sourceReplicationParameters,
  targetBulkLoadParameters,
  targetProductionParameters,
  type DbParameter,
} from '../../components/parameters';

interface Described {
  readonly context: string;
  readonly type: string;
  readonly min: string;
  readonly max: string;
}

async function describeConfig(major: number): Promise<Map<string, Described>> {
  const bin = findServerBinaries(major)!;
  const r = await execa(path.join(bin.bindir, 'postgres'), ['--describe-config'], {
    env: { LD_LIBRARY_PATH: path.join(bin.bindir, '..', 'lib') },
  });
  const map = new Map<string, Described>();
  for (const line of r.stdout.split('\n')) {
    // name, context, group, type, reset value, min, max, …
    const [name, context, , type, , min, max] = line.split('\t');
    if (name && context && type) map.set(name, { context, type, min: min ?? '', max: max ?? '' });
  }
  return map;
}

const STRATEGIES = ['logical', 'pglogical', 'dump-restore', 'bucardo'] as const;
const allSets = (): { set: string; params: DbParameter[] }[] =>
  STRATEGIES.flatMap((s) => [
    { set: `source/${s}`, params: sourceReplicationParameters(s) },
    { set: `target-sync/${s}`, params: targetBulkLoadParameters(s) },
    { set: `target-cutover/${s}`, params: targetProductionParameters(s) },
  ]);

describe('RDS parameter groups against postgres --describe-config', function () {
  this.timeout(60_000);

  const majors = availableMajors();

  it(`every parameter exists, static ones are pending-reboot and dynamic ones immediate, values in range (majors ${majors.join(', ')})`, async function () {
    assert.ok(majors.length >= 3, `several majors to check against (found ${majors.join(', ')})`);
    for (const major of majors) {
      const described = await describeConfig(major);
      assert.ok(described.size > 200, `postgres ${major} --describe-config`);
      for (const { set, params } of allSets()) {
        for (const p of params) {
          // RDS's own parameters (rds.*) are not PostgreSQL's: rds.logical_replication is static by RDS's documentation.
          if (p.name.startsWith('rds.')) {
            assert.equal(p.applyMethod, 'pending-reboot', `${set} ${p.name}`);
            continue;
          }
          const d = described.get(p.name);
          assert.ok(d, `${p.name} (${set}) is not a parameter of PostgreSQL ${major}`);
          assert.equal(
            p.applyMethod,
            d.context === 'postmaster' ? 'pending-reboot' : 'immediate',
            `${set} ${p.name} (context ${d.context}, PostgreSQL ${major})`,
          );
          if (d.type === 'INTEGER') {
            const v = Number(p.value);
            assert.ok(
              Number.isInteger(v) && v >= Number(d.min) && v <= Number(d.max),
              `${p.name}=${p.value} within [${d.min}, ${d.max}] on ${major}`,
            );
          }
          if (d.type === 'BOOLEAN') assert.match(p.value, /^(0|1|on|off|true|false)$/, `${p.name}=${p.value}`);
        }
      }
    }
  });

  it('the cutover changes only dynamic parameters: the same static ones, with the same values, in both phases', function () {
    for (const s of STRATEGIES) {
      const statics = (ps: DbParameter[]) =>
        ps
          .filter((p) => p.applyMethod === 'pending-reboot')
          .map((p) => `${p.name}=${p.value}`)
          .sort();
      assert.deepEqual(statics(targetProductionParameters(s)), statics(targetBulkLoadParameters(s)), s);
    }
  });

  it('the family follows the major', function () {
    assert.equal(parameterGroupFamily('17'), 'postgres17');
    assert.equal(parameterGroupFamily('16.4'), 'postgres16');
  });
});
