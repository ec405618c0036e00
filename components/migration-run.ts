/**
 * MigrationRun: a Pulumi dynamic resource whose provider drives the engine.
 * `create` syncs (logical: copy, then streaming) or migrates (dump-restore);
 * changing `phase` to `cutover` and running `pulumi up` cuts over, and to
 * `rollback` (after a cutover with `options.rollback`) moves back; `delete`
 * removes slots, publications, subscriptions and pgrelocate's state, never the
 * target's data.
 *
 * The SDK serializes the provider object with everything its closures
 * capture, and `pulumi destroy` runs the text stored in the state. So the
 * provider is built by `makeProvider(driverPath)`: its methods capture only
 * that path, relative to the project directory (where Pulumi runs the provider
 * host), and `require` the driver there at call time: another checkout of the
 * project, elsewhere, destroys the same stack.
 */
import * as pulumi from '@pulumi/pulumi';
import type { AwsAccess } from './aws-access';
import type { PulumiStrategy, RunInputs, RunOutputs } from './run-driver';

/** Where the compiled driver lives, relative to the project directory; captured by value in the serialized provider. */
export const DRIVER_PATH = 'dist/components/run-driver.js';

/**
 * Inputs whose change means a new run rather than a step of this one. Pure.
 * Not the worker: the run's state lives on the target, so a new worker (a new
 * CLI package, say) carries on the same run; what the old one was running
 * resumes there (see run-driver's `lost`).
 */
export function replacementKeys(olds: Partial<RunInputs>, news: Partial<RunInputs>): string[] {
  const keys = (['source', 'target', 'strategy', 'mode'] as const).filter((k) => olds[k] !== news[k]);
  // Other databases are other runs: a new set is a new migration.
  return JSON.stringify(olds.databases ?? null) !== JSON.stringify(news.databases ?? null) ? [...keys, 'databases'] : keys;
}

/**
 * Whether `pulumi up` has work for the run: a new run, a phase or options
 * change, or a command still running on the worker when the last `pulumi up`
 * stopped waiting (this one waits again). Pure.
 */
export function runChanged(olds: RunOutputs, news: RunInputs): boolean {
  return (
    replacementKeys(olds, news).length > 0 ||
    olds.phase !== news.phase ||
    JSON.stringify(olds.options) !== JSON.stringify(news.options) ||
    olds.workerInstanceId !== news.workerInstanceId ||
    // run-driver's STILL_RUNNING, written out: the serialized provider captures no other module (a test keeps them equal).
    ['copying', 'migrating', 'cutting-over', 'rolling-back'].includes(olds.status)
  );
}

export function makeProvider(driverPath: string): pulumi.dynamic.ResourceProvider {
  const load = (): typeof import('./run-driver') => {
    const file = (require('node:path') as typeof import('node:path')).resolve(driverPath);
    try {
      return require(file) as typeof import('./run-driver');
    } catch (e) {
      if ((e as { code?: string }).code === 'MODULE_NOT_FOUND' && String((e as Error).message).includes(file))
        throw new Error(
          `The MigrationRun provider loads its driver from ${file}, which does not exist. Fix: run pulumi in the pgrelocate project directory, after \`npm ci\` (which builds dist/).`,
        );
      throw e;
    }
  };
  return {
    async check(olds: Partial<RunInputs>, news: RunInputs) {
      const failures: { property: string; reason: string }[] = [];
      if (!news.source) failures.push({ property: 'source', reason: 'the source URL is required' });
      if (!news.target) failures.push({ property: 'target', reason: 'the target URL is required' });
      if (news.mode === 'ssm' && !news.workerInstanceId)
        failures.push({ property: 'workerInstanceId', reason: 'ssm mode needs the worker' });
      if (news.strategy === 'dump-restore' && news.phase === 'cutover') {
        failures.push({ property: 'phase', reason: 'dump-restore has no cutover phase: the whole run is the downtime' });
      }
      // The way back is armed at the cutover's switch: only a run cut over with it has one.
      if (news.phase === 'rollback' && olds.phase !== 'cutover' && olds.phase !== 'rollback')
        failures.push({ property: 'phase', reason: 'rollback follows a cutover: set phase cutover (with options.rollback true) first' });
      else if (news.phase === 'rollback' && olds.phase === 'cutover' && olds.options?.rollback !== true)
        failures.push({
          property: 'phase',
          reason:
            'this run was cut over without options.rollback, so nothing carries the new server’s writes back: going back is a new stack migrating from the new server to the old one',
        });
      if (news.databases && news.phase === 'rollback')
        failures.push({
          property: 'phase',
          reason:
            'a run of several databases has no rollback phase: each database goes back on its own, with the CLI on the worker (pgrelocate rollback against that database)',
        });
      if (news.strategy === 'bucardo' && news.mode === 'in-process')
        failures.push({
          property: 'strategy',
          reason:
            'bucardo needs a Bucardo control server, which only the worker of an aws stack runs: use mode aws, or the CLI (pgrelocate sync --strategy bucardo --bucardo-url …)',
        });
      return { inputs: news, failures };
    },
    async diff(_id: string, olds: RunOutputs, news: RunInputs) {
      return { changes: runChanged(olds, news), replaces: replacementKeys(olds, news), deleteBeforeReplace: true };
    },
    async create(inputs: RunInputs) {
      const driver = load();
      const outs = await driver.startRun(inputs);
      return { id: outs.runId || `run-${Date.now()}`, outs };
    },
    async update(_id: string, olds: RunOutputs, news: RunInputs) {
      const driver = load();
      return { outs: await driver.advanceRun(olds, news) };
    },
    async delete(_id: string, props: RunOutputs) {
      const driver = load();
      await driver.stopRun(props);
    },
  };
}

export const migrationRunProvider = makeProvider(DRIVER_PATH);

export interface MigrationRunArgs {
  /** Source URL (secret). */
  readonly source: pulumi.Input<string>;
  /** Target URL (secret). */
  readonly target: pulumi.Input<string>;
  readonly strategy: pulumi.Input<PulumiStrategy>;
  /** `sync`, then `cutover` (change the stack config and `pulumi up`); `rollback` after a cutover with `options.rollback`. */
  readonly phase: pulumi.Input<'sync' | 'cutover' | 'rollback'>;
  readonly options: pulumi.Input<RunInputs['options']>;
  /** `in-process` (local stacks) or `ssm` (the pgrelocate CLI on the worker). */
  readonly mode: pulumi.Input<'in-process' | 'ssm'>;
  readonly workerInstanceId?: pulumi.Input<string>;
  /** Several databases as one run: `all` of the source's, or these (`pgrelocate:databases`). */
  readonly databases?: pulumi.Input<'all' | string[]>;
  /** The aws provider's region, profile and roles (ssm mode): the run's SSM calls use the same. */
  readonly aws?: pulumi.Input<AwsAccess>;
}

export class MigrationRun extends pulumi.dynamic.Resource {
  declare readonly runId: pulumi.Output<string>;
  declare readonly status: pulumi.Output<string>;
  declare readonly copySeconds: pulumi.Output<number | null>;
  declare readonly catchUpSeconds: pulumi.Output<number | null>;
  declare readonly blackoutSeconds: pulumi.Output<number | null>;
  declare readonly verified: pulumi.Output<boolean | null>;
  declare readonly newTargetUrl: pulumi.Output<string>;

  constructor(name: string, args: MigrationRunArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      migrationRunProvider,
      name,
      {
        ...args,
        source: pulumi.secret(args.source),
        target: pulumi.secret(args.target),
        runId: undefined,
        status: undefined,
        copySeconds: undefined,
        catchUpSeconds: undefined,
        blackoutSeconds: undefined,
        verified: undefined,
        newTargetUrl: undefined,
      },
      { ...opts, additionalSecretOutputs: ['source', 'target'] },
    );
  }
}
