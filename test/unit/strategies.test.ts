import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describeSteps, STRATEGIES, STREAMING_STRATEGIES, streamingHooks } from '../../engine/strategies';

const ROOT = path.resolve(__dirname, '..', '..', '..');

/** Relative import specifiers of a TypeScript file, with whether each is type-only. */
function imports(file: string): { spec: string; typeOnly: boolean }[] {
  const text = readFileSync(file, 'utf8');
  const found: { spec: string; typeOnly: boolean }[] = [];
  for (const m of text.matchAll(/^import (type )?[^;]*? from '([^']+)';/gms)) found.push({ spec: m[2]!, typeOnly: m[1] !== undefined });
  for (const m of text.matchAll(/require\('([^']+)'\)/g)) found.push({ spec: m[1]!, typeOnly: false });
  return found;
}

function tsFiles(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => path.join(ROOT, dir, f));
}

describe('strategies behind one interface', function () {
  it("plan's step lists come from the steps themselves, each with what it does", function () {
    const names = (s: (typeof STRATEGIES)[number], bucardoParallelCopy = false) =>
      describeSteps(s, { jobs: 3, bucardoParallelCopy }).map((x) => x.name);
    assert.deepEqual(names('logical'), [
      'globals',
      'schema-pre-data',
      'replica-identity',
      'publication',
      'copy',
      'schema-post-data',
      'subscribe',
      'catch-up',
      'cutover',
    ]);
    assert.deepEqual(names('pglogical'), ['globals', 'schema', 'nodes', 'subscribe', 'tables', 'catch-up', 'cutover']);
    assert.deepEqual(names('bucardo'), ['globals', 'schema', 'control', 'sync-setup', 'onetimecopy', 'catch-up', 'cutover']);
    assert.deepEqual(names('bucardo', true), [
      'globals',
      'schema-pre-data',
      'control',
      'sync-setup',
      'copy',
      'schema-post-data',
      'start',
      'catch-up',
      'cutover',
    ]);
    assert.deepEqual(names('dump-restore'), ['globals', 'dump', 'restore', 'database-settings', 'vacuum-analyze', 'verify']);
    for (const s of STRATEGIES)
      for (const step of describeSteps(s, { jobs: 3 })) {
        assert.ok(step.what.length > 10, `${s}: step ${step.name} says what it does`);
        assert.ok(!step.what.includes('{jobs}'), `${s}: ${step.what}`);
      }
    assert.match(describeSteps('logical', { jobs: 3 }).find((x) => x.name === 'copy')!.what, /^3 parallel COPY/);
  });

  it("each cutover is the shared skeleton with the strategy's own final sync", function () {
    const cutover = (s: (typeof STREAMING_STRATEGIES)[number]) =>
      describeSteps(s, { jobs: 2 })
        .find((x) => x.name === 'cutover')!
        .what.split(', ');
    for (const s of STREAMING_STRATEGIES) {
      assert.equal(streamingHooks(s).name, s);
      const steps = cutover(s);
      const at = (name: string) => {
        assert.ok(steps.includes(name), `${s}: ${name} in ${steps.join(', ')}`);
        return steps.indexOf(name);
      };
      // Nothing that grows with the data inside the fence: verification and matviews come before it.
      assert.ok(at('lag-gate') < at('verify') && at('verify') < at('fence'), `${s}: verified at a pinned point before the fence`);
      assert.ok(at('matviews') < at('fence'), `${s}: matviews refreshed before the fence`);
      assert.ok(at('fence') < at('sequences') && at('sequences') < at('switch'), `${s}: sequences inside the fence`);
      assert.ok(at('switch') < at('remove-replication'), `${s}: replication removed only after the switch`);
    }
    assert.ok(cutover('logical').includes('final-lsn'));
    const pgl = cutover('pglogical');
    assert.deepEqual(pgl.slice(pgl.indexOf('fence'), pgl.indexOf('fence') + 3), ['fence', 'pglogical-sequences', 'final-lsn']);
    assert.ok(cutover('bucardo').includes('final-sync') && !cutover('bucardo').includes('final-lsn'));
    assert.equal(streamingHooks('bucardo').fenceSpares, 'bucardo %', "the fence spares Bucardo's own sessions");
  });

  it('the shared core imports no strategy, and the Pulumi components import strategies for their types only', function () {
    const core = [...tsFiles('engine/streaming'), ...tsFiles('engine/copy')];
    // The scan must see what it checks: the core does import the shared names.
    assert.ok(core.some((f) => imports(f).some((i) => i.spec.endsWith('strategies/names'))));
    for (const file of core)
      for (const i of imports(file))
        assert.ok(!i.spec.includes('strategies/') || i.spec.endsWith('strategies/names'), `${path.relative(ROOT, file)} imports ${i.spec}`);
    for (const file of tsFiles('components'))
      for (const i of imports(file).filter((x) => x.spec.includes('engine/strategies')))
        // The run driver loads the engine at run time (require), never at program load.
        assert.ok(i.typeOnly || path.basename(file) === 'run-driver.ts', `${path.relative(ROOT, file)} imports ${i.spec}`);
  });
});
