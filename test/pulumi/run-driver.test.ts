/** The MigrationRun driver's pure parts: the pgrelocate command line and the SSM script for the worker. */
import assert from 'node:assert/strict';
import { execa } from 'execa';
import { replacementKeys, runChanged } from '../../components/migration-run';
import { STILL_RUNNING, workerCommand } from '../../components/run-driver';
import { shq, ssmScript } from '../../components/ssm';
import { sourceReplicationParameters } from '../../components/parameters';
import { targetParameters } from '../../components/target-database';
import { parseStackConfig } from '../../components/config';

describe('MigrationRun driver', function () {
  it('builds the pgrelocate command line for each phase', function () {
    const inputs = {
      strategy: 'logical' as const,
      phase: 'sync' as const,
      options: { jobs: 8, replicaIdentityFull: true, maxLag: '16MB', verify: 'count' as const, preHook: 'maint on' },
    };
    assert.deepEqual(workerCommand(inputs, 'sync'), [
      'sync',
      '--jobs',
      '8',
      '--replica-identity-full',
      '--max-lag',
      '16MB',
      '--verify',
      'count',
      '--pre-hook',
      'maint on',
    ]);
    assert.deepEqual(workerCommand(inputs, 'cleanup'), ['cleanup']);
    // dump-restore takes the stack's --jobs and --verify, none of the streaming options.
    assert.deepEqual(workerCommand({ ...inputs, strategy: 'dump-restore' }, 'migrate'), [
      'migrate',
      '--jobs',
      '8',
      '--verify',
      'count',
      '--strategy',
      'dump-restore',
    ]);
    // pglogical: the worker's sync names the strategy; cutover and cleanup read it from the run.
    assert.deepEqual(workerCommand({ ...inputs, strategy: 'pglogical' }, 'sync').slice(-2), ['--strategy', 'pglogical']);
    assert.ok(!workerCommand({ ...inputs, strategy: 'pglogical' }, 'cutover').includes('--strategy'));
    // The way back: armed by the cutover's --rollback, run by the worker's `pgrelocate rollback` with the options it takes.
    const back = { ...inputs, options: { ...inputs.options, rollback: true, maxBlackout: 10 } };
    assert.ok(workerCommand(back, 'cutover').includes('--rollback'));
    assert.deepEqual(workerCommand(back, 'rollback'), ['rollback', '--max-lag', '16MB', '--max-blackout', '10']);
  });

  it('pglogical: the target keeps pglogical preloaded in both phases; the source gets it with the replication settings', function () {
    for (const phase of ['sync', 'cutover'] as const) {
      const t = new Map(targetParameters(phase, 'pglogical').map((x) => [x.name, x]));
      assert.equal(t.get('shared_preload_libraries')?.value, 'pg_stat_statements,pglogical');
      assert.equal(t.get('shared_preload_libraries')?.applyMethod, 'pending-reboot');
      assert.ok(!targetParameters(phase, 'logical').some((x) => x.name === 'shared_preload_libraries'));
    }
    assert.ok(
      sourceReplicationParameters('pglogical').some((x) => x.name === 'shared_preload_libraries' && /pglogical/.test(String(x.value))),
    );
    assert.equal(parseStackConfig({ mode: 'local', strategy: 'pglogical' }).strategy, 'pglogical');
  });

  it('quotes arguments for the shell, and the SSM script is valid sh that leaves long runs going', async function () {
    assert.equal(shq('16MB'), '16MB');
    assert.equal(shq("it's on"), `'it'\\''s on'`);
    const script = ssmScript(['sync', '--pre-hook', "maint 'on'"], 3600);
    assert.match(script.join('\n'), /systemctl start --no-block pgrelocate@sync\.service/);
    assert.match(script.join('\n'), /running:true/);
    const r = await execa('sh', ['-n', '-c', script.join('\n')], { reject: false });
    assert.equal(r.exitCode, 0, String(r.stderr));
  });

  it('a new source, target or strategy means a new run; a new worker or a phase change does not (the run lives on the target)', function () {
    const a = { source: 's', target: 't', strategy: 'logical' as const, mode: 'ssm' as const, workerInstanceId: 'i-1' };
    assert.deepEqual(replacementKeys(a, { ...a }), []);
    assert.deepEqual(replacementKeys(a, { ...a, target: 't2', workerInstanceId: 'i-2' }), ['target']);
    assert.deepEqual(replacementKeys(a, { ...a, workerInstanceId: 'i-2' }), []);
  });

  it('a sync, migrate or cutover still running when pulumi up stopped waiting is waited for again by the next pulumi up', function () {
    const inputs = { source: 's', target: 't', strategy: 'logical' as const, phase: 'sync' as const, options: {}, mode: 'ssm' as const };
    const outputs = (status: string) => ({
      ...inputs,
      runId: 'r',
      status,
      copySeconds: null,
      catchUpSeconds: null,
      blackoutSeconds: null,
      verified: null,
      newTargetUrl: '',
    });
    assert.equal(runChanged(outputs('streaming'), inputs), false, 'nothing to do once streaming');
    for (const status of Object.values(STILL_RUNNING)) assert.equal(runChanged(outputs(status), inputs), true, status);
    assert.equal(runChanged(outputs('streaming'), { ...inputs, phase: 'cutover' }), true);
    // A new worker: an update, so a command the old one was running is waited for (or resumed) on the new one.
    assert.equal(runChanged(outputs('streaming'), { ...inputs, workerInstanceId: 'i-new' }), true);
  });
});
