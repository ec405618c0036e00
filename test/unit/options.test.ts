import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseStackConfig, type ConfigError } from '../../components/config';
import { workerCommand } from '../../components/run-driver';
import {
  commandLine,
  engineOptions,
  flagOf,
  OPTIONS,
  OPTION_NAMES,
  optionsMarkdown,
  optionsOf,
  PULUMI_OPTIONS,
  readOption,
} from '../../engine/options';
import { opt } from '../../engine/option-names';
import { resolveStreamingOptions } from '../../engine/streaming/options';
import { buildProgram } from '../../scripts/cli';

describe('one options table', function () {
  it('the CLI flags of each command are the table’s options of that command', function () {
    const program = buildProgram();
    for (const command of ['check', 'plan', 'migrate', 'sync', 'copy', 'cutover'] as const) {
      const cmd = program.commands.find((c) => c.name() === command)!;
      const flags = new Set(cmd.options.map((o) => o.long));
      for (const name of optionsOf(command)) {
        const flag = flagOf(name);
        if (flag) assert.ok(flags.has(flag), `${command} takes ${flag}`);
      }
    }
  });

  it('values read the same from the CLI (text) and from Pulumi (JSON), with one message for a bad one', function () {
    assert.equal(readOption('jobs', '8'), 8);
    assert.equal(readOption('jobs', 8), 8);
    assert.equal(readOption('maxLag', 16), 16, 'a bare number is bytes');
    assert.equal(readOption('maxLag', '16MB'), '16MB');
    assert.throws(() => readOption('jobs', 0), /^Error: must be a whole number from 1 up$/);
    assert.throws(() => readOption('maxLag', 'banana'), /must be a size such as 16MB/);
    assert.throws(() => readOption('compress', '12'), /must be a whole number from 0 to 9/);
    assert.equal(engineOptions({ maxLag: '16MB' }).maxLagBytes, 16 * 1024 ** 2);
  });

  it('defaults are written once: the engine’s and Pulumi’s are the same (no 1GB split under Pulumi)', function () {
    const cfg = parseStackConfig({ mode: 'local' });
    assert.deepEqual(cfg.options, {}, 'Pulumi adds no defaults of its own');
    const fromPulumi = resolveStreamingOptions(engineOptions(cfg.options));
    const fromCli = resolveStreamingOptions({});
    assert.equal(fromPulumi.splitBytes, 0, 'automatic, as on the CLI');
    assert.deepEqual(
      { ...fromPulumi, jobs: 0, workDir: '' },
      { ...fromCli, jobs: 0, workDir: '' },
      'the same engine options whichever front end is used',
    );
    assert.equal(fromCli.maxLagBytes, 16 * 1024 ** 2);
    assert.equal(fromCli.catchUpTimeout, OPTIONS.catchUpTimeout.default);
  });

  it('the worker runs the command line of the stack’s options, and fixes name the key the user sets', function () {
    const options = parseStackConfig({ mode: 'local', options: { jobs: 4, maxLag: '32MB', catchUpTimeout: 900 } }).options;
    assert.deepEqual(workerCommand({ strategy: 'logical', phase: 'sync', options }, 'sync'), [
      'sync',
      '--jobs',
      '4',
      '--max-lag',
      '32MB',
      '--catch-up-timeout',
      '900',
    ]);
    assert.deepEqual(commandLine({ replicaIdentityFull: false, force: true }, 'sync', true), ['--force']);
    // A list (Pulumi) is the flag repeated; the filter is the sync's (later phases use the run's own).
    const filtered = parseStackConfig({
      mode: 'local',
      options: { includeSchema: ['app', 'Billing*'], excludeTable: 'app.audit' },
    }).options;
    assert.deepEqual(workerCommand({ strategy: 'logical', phase: 'sync', options: filtered }, 'sync'), [
      'sync',
      '--include-schema',
      'app',
      '--include-schema',
      'Billing*',
      '--exclude-table',
      'app.audit',
    ]);
    assert.deepEqual(workerCommand({ strategy: 'logical', phase: 'cutover', options: filtered }, 'cutover'), ['cutover']);
    // pgrelocate:databases: every command of the run, cleanup included, covers the same databases.
    assert.deepEqual(workerCommand({ strategy: 'logical', phase: 'cutover', options: {}, databases: ['crm', 'shop'] }, 'cutover'), [
      'cutover',
      '--databases',
      'crm,shop',
    ]);
    assert.deepEqual(workerCommand({ strategy: 'dump-restore', phase: 'sync', options: {}, databases: 'all' }, 'cleanup'), [
      'cleanup',
      '--all-databases',
    ]);
    assert.deepEqual(engineOptions(filtered).filter, {
      includeSchema: ['app', 'Billing*'],
      excludeSchema: [],
      includeTable: [],
      excludeTable: ['app.audit'],
    });
    for (const name of PULUMI_OPTIONS) assert.equal(opt(name, 'pulumi'), `pgrelocate:options.${name}`);
    for (const name of OPTION_NAMES.filter((n) => !PULUMI_OPTIONS.includes(n)))
      assert.match(opt(name, 'pulumi'), /the CLI's --/, `${name} is a CLI-only option and says so`);
  });

  it('Pulumi keys are strict: an unknown key names the known ones; a number is taken where a string is unambiguous', function () {
    assert.throws(
      () => parseStackConfig({ mode: 'local', options: { maxlag: '16MB' } }),
      (e: ConfigError) => {
        assert.match(
          e.issues.join('\n'),
          /pgrelocate:options: unknown key maxlag; the known ones are jobs, .*replicaIdentityFull, .*maxLag/,
        );
        return true;
      },
    );
    assert.throws(
      () => parseStackConfig({ mode: 'local' }, ['mode', 'sourceUrl', 'stategy']),
      /pgrelocate: unknown key stategy; the known ones are mode, strategy, phase/,
    );
    assert.doesNotThrow(() => parseStackConfig({ mode: 'local' }, ['mode', 'sourceUrl', 'targetUrl']));
    const aws = {
      vpcId: 'vpc-1',
      subnetIds: ['subnet-1', 'subnet-2'],
      sourceSizeGb: 10,
      engineVersion: 17,
      instanceClass: 'db.m6i.large',
    };
    assert.equal(parseStackConfig({ mode: 'aws', aws }).aws?.engineVersion, '17');
  });

  it('docs/options.md is the table itself (npm run docs:options writes it)', function () {
    const doc = readFileSync(path.resolve(__dirname, '..', '..', '..', 'docs', 'options.md'), 'utf8');
    assert.equal(doc, optionsMarkdown());
  });
});
