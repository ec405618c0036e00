/**
 * What the MigrationRun provider does, kept out of the provider so that the
 * serialized provider stays a few lines that `require` this module by path.
 * In-process mode calls the engine directly (local stacks); SSM mode starts
 * the `pgrelocate@<command>` unit on the worker and waits for it (cloud stacks).
 */
import type { SSMClient as SSMClientType } from '@aws-sdk/client-ssm';
import type { AwsAccess } from './aws-access';
import type { Strategy } from '../engine/strategies/names';
import { commandLine, defaultOf, type PulumiOptionValues } from '../engine/options';
import { executionTimeoutSeconds, reportSummary, sendWithRetry, ssmScript, SSM_LIMITS, type ReportSummary } from './ssm';

/** The strategies the Pulumi layer runs: all of them (bucardo's control database runs on the worker). */
export type PulumiStrategy = Strategy;

export interface RunInputs {
  /** Source and target URLs (secrets). */
  readonly source: string;
  readonly target: string;
  readonly strategy: PulumiStrategy;
  readonly phase: 'sync' | 'cutover' | 'rollback';
  /** `pgrelocate:options`, checked against the options table (engine/options.ts). */
  readonly options: PulumiOptionValues;
  readonly mode: 'in-process' | 'ssm';
  readonly workerInstanceId?: string;
  /** The region, profile and roles of the stack's aws provider (ssm mode). */
  readonly aws?: AwsAccess;
  /** Several databases as one run: `all`, or their names (the target URL then names the server's database to connect to first). */
  readonly databases?: 'all' | readonly string[];
}

export interface RunOutputs extends RunInputs {
  readonly runId: string;
  /** streaming (before cutover), done (cut over / migrated), rolled-back (the application back on the source). */
  readonly status: string;
  readonly copySeconds: number | null;
  readonly catchUpSeconds: number | null;
  readonly blackoutSeconds: number | null;
  readonly verified: boolean | null;
  /** Where the application connects now, without credentials (it keeps its own role); empty until the switch. */
  readonly newTargetUrl: string;
}

/**
 * The target's URL for the application: host, port, database and TLS, no user
 * or password. The run's own login is the target's master user (rds_superuser):
 * the application keeps its own role, which the run brought over. Pure.
 */
export function applicationUrl(targetUrl: string): string {
  const u = new URL(targetUrl);
  u.username = '';
  u.password = '';
  return u.toString();
}

/** The pgrelocate command line the worker's unit runs for a phase. Pure. */
export function workerCommand(
  inputs: Pick<RunInputs, 'strategy' | 'phase' | 'options' | 'databases'>,
  command: 'sync' | 'cutover' | 'rollback' | 'migrate' | 'cleanup',
): string[] {
  const cluster = databasesArgs(inputs.databases);
  if (command === 'cleanup') return [command, ...cluster];
  const args = [command, ...commandLine(inputs.options, command, inputs.strategy !== 'dump-restore'), ...cluster];
  if (command === 'migrate' || (command === 'sync' && inputs.strategy !== 'logical')) args.push('--strategy', inputs.strategy);
  return args;
}

/** The CLI's flags for `pgrelocate:databases`. Pure. */
export function databasesArgs(databases: RunInputs['databases']): string[] {
  return databases === 'all' ? ['--all-databases'] : databases ? ['--databases', databases.join(',')] : [];
}

/**
 * The credentials of the SSM client: the profile's (or the default chain's),
 * then each assumed role in turn. `undefined` means the SDK's default chain.
 */
export function ssmCredentials(access: AwsAccess): ReturnType<typeof import('@aws-sdk/credential-providers').fromIni> | undefined {
  const providers = require('@aws-sdk/credential-providers') as typeof import('@aws-sdk/credential-providers');
  let creds: ReturnType<typeof providers.fromIni> | undefined = access.profile ? providers.fromIni({ profile: access.profile }) : undefined;
  for (const role of access.assumeRoles ?? []) {
    creds = providers.fromTemporaryCredentials({
      params: {
        RoleArn: role.roleArn,
        RoleSessionName: role.sessionName ?? 'pgrelocate-run',
        ...(role.externalId ? { ExternalId: role.externalId } : {}),
      },
      ...(creds ? { masterCredentials: creds } : {}),
      clientConfig: { region: access.region },
    });
  }
  return creds;
}

/** What the run's status says while a command is still running on the worker: the next pulumi up waits for it again. */
export const STILL_RUNNING = { sync: 'copying', migrate: 'migrating', cutover: 'cutting-over', rollback: 'rolling-back' } as const;

/** Run a pgrelocate command on the worker through SSM and return its report's summary. */
async function viaSsm(inputs: RunInputs, args: string[], waitSeconds: number, start = true): Promise<ReportSummary> {
  if (!inputs.workerInstanceId || !inputs.aws) throw new Error('MigrationRun in ssm mode needs workerInstanceId and aws (the region)');
  const ssm = require('@aws-sdk/client-ssm') as typeof import('@aws-sdk/client-ssm');
  const credentials = ssmCredentials(inputs.aws);
  const client: SSMClientType = new ssm.SSMClient({
    region: inputs.aws.region,
    ...(credentials ? { credentials } : {}),
  });
  const instance = inputs.workerInstanceId;
  const sent = await sendWithRetry(() =>
    client.send(
      new ssm.SendCommandCommand({
        InstanceIds: [instance],
        DocumentName: 'AWS-RunShellScript',
        Parameters: { commands: ssmScript(args, waitSeconds, start), executionTimeout: [String(executionTimeoutSeconds(waitSeconds))] },
        TimeoutSeconds: SSM_LIMITS.deliveryTimeoutSeconds,
      }),
    ),
  );
  const id = sent.Command?.CommandId;
  if (!id) throw new Error('SSM did not accept the command');
  for (;;) {
    await new Promise((r) => setTimeout(r, 5000));
    const inv = await client
      .send(new ssm.GetCommandInvocationCommand({ CommandId: id, InstanceId: instance }))
      .catch((e: { name?: string }) => (e.name === 'InvocationDoesNotExist' ? null : Promise.reject(e)));
    if (!inv || inv.Status === 'Pending' || inv.Status === 'InProgress' || inv.Status === 'Delayed') continue;
    if (inv.Status !== 'Success')
      throw new Error(`pgrelocate ${args[0]} on ${instance} ended ${inv.Status}: ${inv.StandardErrorContent ?? ''}`);
    // The script prints the summary only: a few hundred characters, far below SSM's output cap.
    return reportSummary(JSON.parse((inv.StandardOutputContent ?? '').trim() || '{}'));
  }
}

/** The engine's options from the stack's, with the engine's defaults for what the stack leaves out. */
function engineOptionsOf(inputs: RunInputs) {
  return (require('../engine/options') as typeof import('../engine/options')).engineOptions(inputs.options);
}

/** The engine's one entry point per command, loaded when a run needs it (the provider serializes this module's path only). */
function engine(): typeof import('../engine/strategies') {
  return require('../engine/strategies') as typeof import('../engine/strategies');
}

/** The whole-cluster entry points, for `pgrelocate:databases`. */
function clusterEngine(): typeof import('../engine/databases') {
  return require('../engine/databases') as typeof import('../engine/databases');
}

/** `pgrelocate:databases` as the engine's selection, or null for one database. */
function selectionOf(inputs: Pick<RunInputs, 'databases'>): { all: true } | { names: readonly string[] } | null {
  return inputs.databases === 'all' ? { all: true } : inputs.databases ? { names: inputs.databases } : null;
}

/** The post-hook of a cluster cutover: the engine's own runner, once, after every switch. */
function postHook(cmd: string): Promise<void> {
  return (require('../engine/streaming/cutover') as typeof import('../engine/streaming/cutover')).runHook(cmd, 'post');
}

function endpoints(inputs: RunInputs) {
  const { parseUrl } = require('../engine/conn') as typeof import('../engine/conn');
  // The engine runs in this process: its fixes name Pulumi config keys, not CLI flags.
  (require('../engine/option-names') as typeof import('../engine/option-names')).setFrontEnd('pulumi');
  return { source: parseUrl(inputs.source, 'source URL'), target: parseUrl(inputs.target, 'target URL') };
}

const empty = {
  runId: '',
  status: 'pending',
  copySeconds: null,
  catchUpSeconds: null,
  blackoutSeconds: null,
  verified: null,
  newTargetUrl: '',
};

/**
 * create: dump-restore migrates; a streaming strategy syncs (and cuts over when
 * created with phase cutover). `start` false: wait again for what an earlier
 * pulumi up started on the worker, without starting it twice.
 */
export async function startRun(inputs: RunInputs, start = true): Promise<RunOutputs> {
  if (inputs.strategy === 'dump-restore') {
    const r =
      inputs.mode === 'ssm'
        ? notLost(await viaSsm(inputs, workerCommand(inputs, 'migrate'), SSM_LIMITS.maxExecutionTimeoutSeconds, start), inputs)
        : selectionOf(inputs)
          ? reportSummary(
              await clusterEngine().migrateDatabases(
                endpoints(inputs).source,
                endpoints(inputs).target,
                selectionOf(inputs)!,
                { strategy: 'dump-restore', dumpRestore: engineOptionsOf(inputs) },
                () => undefined,
                postHook,
              ),
            )
          : reportSummary(
              (
                await engine().migrate('dump-restore', endpoints(inputs).source, endpoints(inputs).target, {
                  dumpRestore: engineOptionsOf(inputs),
                })
              ).report,
            );
    return {
      ...inputs,
      ...empty,
      runId: r.runId ?? '',
      status: r.running ? STILL_RUNNING.migrate : 'done',
      copySeconds: r.seconds,
      blackoutSeconds: r.seconds,
      verified: r.verified,
      newTargetUrl: r.running ? '' : applicationUrl(inputs.target),
    };
  }
  const synced = await syncRun(inputs, inputs.strategy, start);
  return inputs.phase === 'cutover' && synced.status === 'streaming' ? { ...synced, ...(await cutoverRun(inputs)) } : synced;
}

/**
 * A migrate this worker never ran: the worker was replaced while it ran on the
 * old one. Starting it again would meet a half-restored target, so say so.
 */
function notLost(r: ReportSummary, inputs: RunInputs): ReportSummary {
  if (!r.lost) return r;
  throw new Error(
    `The dump-restore that was running on the previous worker did not finish there, and worker ${inputs.workerInstanceId ?? ''} never ran it: the target may hold part of the restore. Fix: check it with \`pgrelocate status\` on the worker, empty the target database, then \`pulumi up --replace\` the run.`,
  );
}

/** Sync, or wait again for a sync the worker is still copying (a sync the worker never ran, after a replacement, starts and resumes). */
async function syncRun(inputs: RunInputs, strategy: Exclude<PulumiStrategy, 'dump-restore'>, start: boolean): Promise<RunOutputs> {
  const wait = inputs.options.waitSeconds ?? defaultOf('waitSeconds');
  let ssmSummary = inputs.mode === 'ssm' ? await viaSsm(inputs, workerCommand(inputs, 'sync'), wait, start) : null;
  if (ssmSummary?.lost) ssmSummary = await viaSsm(inputs, workerCommand(inputs, 'sync'), wait, true);
  const sel = selectionOf(inputs);
  const s =
    ssmSummary ??
    (sel
      ? reportSummary(
          await clusterEngine().syncDatabases(
            endpoints(inputs).source,
            endpoints(inputs).target,
            sel,
            { ...engineOptionsOf(inputs), strategy },
            () => undefined,
          ),
        )
      : reportSummary((await engine().sync(strategy, endpoints(inputs).source, endpoints(inputs).target, engineOptionsOf(inputs))).report));
  return {
    ...inputs,
    ...empty,
    runId: s.runId ?? '',
    status: s.running ? STILL_RUNNING.sync : 'streaming',
    copySeconds: s.copySeconds,
    catchUpSeconds: s.catchUpSeconds,
  };
}

/** Cut over, or wait again for a cutover still running on the worker (one the worker never ran resumes from its recorded steps). */
async function cutoverRun(inputs: RunInputs, start = true): Promise<Partial<RunOutputs>> {
  let ssmSummary = inputs.mode === 'ssm' ? await viaSsm(inputs, workerCommand(inputs, 'cutover'), 3600, start) : null;
  if (ssmSummary?.lost) ssmSummary = await viaSsm(inputs, workerCommand(inputs, 'cutover'), 3600, true);
  const sel = selectionOf(inputs);
  const c =
    ssmSummary ??
    (sel
      ? reportSummary(
          await clusterEngine().cutoverCluster(
            endpoints(inputs).source,
            endpoints(inputs).target,
            sel,
            engineOptionsOf(inputs),
            () => undefined,
            postHook,
          ),
        )
      : reportSummary(await engine().cutover(endpoints(inputs).source, endpoints(inputs).target, engineOptionsOf(inputs))));
  if (c.running) return { status: STILL_RUNNING.cutover, ...(c.runId ? { runId: c.runId } : {}) };
  return { status: 'done', blackoutSeconds: c.blackoutSeconds, verified: c.verified, newTargetUrl: applicationUrl(inputs.target) };
}

/**
 * Roll back, or wait again for a rollback still running on the worker: the
 * application goes back to the source, which `newTargetUrl` then names.
 */
async function rollbackRun(inputs: RunInputs, start = true): Promise<Partial<RunOutputs>> {
  let ssmSummary = inputs.mode === 'ssm' ? await viaSsm(inputs, workerCommand(inputs, 'rollback'), 3600, start) : null;
  if (ssmSummary?.lost) ssmSummary = await viaSsm(inputs, workerCommand(inputs, 'rollback'), 3600, true);
  const r =
    ssmSummary ?? reportSummary(await engine().rollback(endpoints(inputs).source, endpoints(inputs).target, engineOptionsOf(inputs)));
  if (r.running) return { status: STILL_RUNNING.rollback };
  return { status: 'rolled-back', blackoutSeconds: r.blackoutSeconds, newTargetUrl: applicationUrl(inputs.source) };
}

/** update: sync → cutover → rollback, each once; options changes are recorded. */
export async function advanceRun(olds: RunOutputs, news: RunInputs): Promise<RunOutputs> {
  if ((olds.phase === 'cutover' || olds.phase === 'rollback') && news.phase === 'sync') {
    throw new Error(
      'A run that was cut over cannot go back to sync: the source is read-only and the application moved. Create a new stack for a new migration.',
    );
  }
  if (olds.phase === 'rollback' && news.phase === 'cutover') {
    throw new Error(
      'A run that was rolled back cannot be cut over again: its replication is gone. Fix: pulumi destroy, then a new stack for a new migration.',
    );
  }
  const base: RunOutputs = { ...olds, ...news };
  // Still running on the worker when the last pulumi up stopped waiting: wait for it again.
  if (olds.status === STILL_RUNNING.sync || olds.status === STILL_RUNNING.migrate) return startRun(news, false);
  if (olds.status === STILL_RUNNING.cutover) return { ...base, ...(await cutoverRun(news, false)) };
  if (olds.status === STILL_RUNNING.rollback) return { ...base, ...(await rollbackRun(news, false)) };
  if (news.strategy !== 'dump-restore' && olds.phase === 'sync' && news.phase === 'cutover' && olds.status !== 'done') {
    return { ...base, ...(await cutoverRun(news)) };
  }
  if (olds.phase === 'cutover' && news.phase === 'rollback' && olds.status === 'done') {
    return { ...base, ...(await rollbackRun(news)) };
  }
  return base;
}

/** delete: remove replication artefacts and pgrelocate's state; never target data. */
export async function stopRun(props: RunOutputs): Promise<void> {
  if (props.mode === 'ssm') {
    await viaSsm(props, workerCommand(props, 'cleanup'), 1800);
    return;
  }
  const { source, target } = endpoints(props);
  const sel = selectionOf(props);
  const one = async (s: typeof source, t: typeof target): Promise<unknown> =>
    props.strategy !== 'dump-restore'
      ? engine().cleanup(s, t)
      : (require('../engine/state') as typeof import('../engine/state')).dropState(t);
  if (!sel) await one(source, target);
  else {
    const names = await clusterEngine().databasesOnTarget(source, target, sel);
    await clusterEngine().eachDatabase(source, target, names, () => undefined, one);
  }
}
