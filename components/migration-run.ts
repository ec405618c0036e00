/**
 * MigrationRun: a Pulumi dynamic resource whose provider drives the engine.
 * `create` syncs (logical: copy, then streaming) or migrates (dump-restore);
 * changing `phase` to `cutover` and running `pulumi up` cuts over; `delete`
 * removes slots, publications, subscriptions and pgrelocate's state, never the
 * target's data.
 *
 * The SDK serializes the provider object with everything its closures
 * capture. So the provider is built by `makeProvider(driverPath)`: its methods
 * capture only that string and `require` the driver module at call time.
 * `pulumi destroy` runs the provider text stored in the state, so the driver
 * must still be at that path then (the project directory).
 */
import path from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import type { PulumiStrategy, RunInputs, RunOutputs } from './run-driver';

/** Where the compiled driver lives; captured by value in the serialized provider. */
export const DRIVER_PATH = path.join(__dirname, 'run-driver.js');

/** Inputs whose change means a new run rather than a step of this one. Pure. */
export function replacementKeys(olds: Partial<RunInputs>, news: Partial<RunInputs>): string[] {
  return (['source', 'target', 'strategy', 'mode', 'workerInstanceId'] as const).filter((k) => olds[k] !== news[k]);
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
    // run-driver's STILL_RUNNING, written out: the serialized provider captures no other module (a test keeps them equal).
    ['copying', 'migrating', 'cutting-over'].includes(olds.status)
  );
}

export function makeProvider(driverPath: string): pulumi.dynamic.ResourceProvider {
  return {
    async check(_olds: RunInputs, news: RunInputs) {
      const failures: { property: string; reason: string }[] = [];
      if (!news.source) failures.push({ property: 'source', reason: 'the source URL is required' });
      if (!news.target) failures.push({ property: 'target', reason: 'the target URL is required' });
      if (news.mode === 'ssm' && !news.workerInstanceId)
        failures.push({ property: 'workerInstanceId', reason: 'ssm mode needs the worker' });
      if (news.strategy === 'dump-restore' && news.phase === 'cutover') {
        failures.push({ property: 'phase', reason: 'dump-restore has no cutover phase: the whole run is the downtime' });
      }
      return { inputs: news, failures };
    },
    async diff(_id: string, olds: RunOutputs, news: RunInputs) {
      return { changes: runChanged(olds, news), replaces: replacementKeys(olds, news), deleteBeforeReplace: true };
    },
    async create(inputs: RunInputs) {
      const driver = require(driverPath) as typeof import('./run-driver');
      const outs = await driver.startRun(inputs);
      return { id: outs.runId || `run-${Date.now()}`, outs };
    },
    async update(_id: string, olds: RunOutputs, news: RunInputs) {
      const driver = require(driverPath) as typeof import('./run-driver');
      return { outs: await driver.advanceRun(olds, news) };
    },
    async delete(_id: string, props: RunOutputs) {
      const driver = require(driverPath) as typeof import('./run-driver');
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
  /** `sync`, then `cutover` (change the stack config and `pulumi up`). */
  readonly phase: pulumi.Input<'sync' | 'cutover'>;
  readonly options: pulumi.Input<RunInputs['options']>;
  /** `in-process` (local stacks) or `ssm` (the pgrelocate CLI on the worker). */
  readonly mode: pulumi.Input<'in-process' | 'ssm'>;
  readonly workerInstanceId?: pulumi.Input<string>;
  readonly region?: pulumi.Input<string>;
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
      { ...opts, additionalSecretOutputs: ['source', 'target', 'newTargetUrl'] },
    );
  }
}
