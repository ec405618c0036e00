/**
 * What the MigrationRun provider does, kept out of the provider so that the
 * serialized provider stays a few lines that `require` this module by path.
 * In-process mode calls the engine directly (local stacks); SSM mode starts
 * the `pgrelocate@<command>` unit on the worker and waits for it (cloud stacks).
 */
import type { SSMClient as SSMClientType } from '@aws-sdk/client-ssm';
import type { Strategy } from '../engine/strategies/names';
import { commandLine, defaultOf, type PulumiOptionValues } from '../engine/options';

/** The strategies the Pulumi layer runs: it provisions no Bucardo control database yet. */
export type PulumiStrategy = Exclude<Strategy, 'bucardo'>;

export interface RunInputs {
  /** Source and target URLs (secrets). */
  readonly source: string;
  readonly target: string;
  readonly strategy: PulumiStrategy;
  readonly phase: 'sync' | 'cutover';
  /** `pgrelocate:options`, checked against the options table (engine/options.ts). */
  readonly options: PulumiOptionValues;
  readonly mode: 'in-process' | 'ssm';
  readonly workerInstanceId?: string;
  readonly region?: string;
}

export interface RunOutputs extends RunInputs {
  readonly runId: string;
  /** streaming (logical, before cutover), done (cut over / migrated). */
  readonly status: string;
  readonly copySeconds: number | null;
  readonly catchUpSeconds: number | null;
  readonly blackoutSeconds: number | null;
  readonly verified: boolean | null;
  /** Where the application connects now (secret); empty until the switch. */
  readonly newTargetUrl: string;
}

/** The pgrelocate command line the worker's unit runs for a phase. Pure. */
export function workerCommand(
  inputs: Pick<RunInputs, 'strategy' | 'phase' | 'options'>,
  command: 'sync' | 'cutover' | 'migrate' | 'cleanup',
): string[] {
  if (command === 'cleanup') return [command];
  const args = [command, ...commandLine(inputs.options, command, inputs.strategy !== 'dump-restore')];
  if (command === 'migrate' || (command === 'sync' && inputs.strategy !== 'logical')) args.push('--strategy', inputs.strategy);
  return args;
}

/** Shell-quote one argument for the worker's EnvironmentFile / shell. */
export function shq(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

/**
 * The commands SSM runs on the worker: start `pgrelocate@<command>` and wait for
 * it, at most `waitSeconds`; past that, print `{"running":true}` and leave the
 * unit running (a copy of terabytes outlives any API call). Pure.
 */
export function ssmScript(args: readonly string[], waitSeconds: number): string[] {
  const unit = args[0]!;
  const rest = args.slice(1).map(shq).join(' ');
  return [
    'set -u',
    `echo ${shq(`PGRELOCATE_ARGS=${rest}`)} > /etc/pgrelocate/args-${unit}`,
    `if ! systemctl is-active --quiet pgrelocate@${unit}.service; then : > /data/logs/${unit}.json; systemctl start --no-block pgrelocate@${unit}.service; fi`,
    `end=$(( $(date +%s) + ${Math.max(1, Math.floor(waitSeconds))} ))`,
    `while systemctl is-active --quiet pgrelocate@${unit}.service; do [ "$(date +%s)" -ge "$end" ] && { echo '{"running":true}'; exit 0; }; sleep 5; done`,
    `if [ "$(systemctl show -p Result --value pgrelocate@${unit}.service)" != success ]; then tail -n 40 /data/logs/${unit}.log >&2; exit 1; fi`,
    `tail -c 200000 /data/logs/${unit}.json`,
  ];
}

async function viaSsm(inputs: RunInputs, args: string[], timeoutSeconds: number): Promise<unknown> {
  if (!inputs.workerInstanceId || !inputs.region) throw new Error('MigrationRun in ssm mode needs workerInstanceId and region');
  const ssm = require('@aws-sdk/client-ssm') as typeof import('@aws-sdk/client-ssm');
  const client: SSMClientType = new ssm.SSMClient({ region: inputs.region });
  const sent = await client.send(
    new ssm.SendCommandCommand({
      InstanceIds: [inputs.workerInstanceId],
      DocumentName: 'AWS-RunShellScript',
      Parameters: { commands: ssmScript(args, timeoutSeconds), executionTimeout: [String(timeoutSeconds + 600)] },
      TimeoutSeconds: 600,
    }),
  );
  const id = sent.Command?.CommandId;
  if (!id) throw new Error('SSM did not accept the command');
  for (;;) {
    await new Promise((r) => setTimeout(r, 5000));
    const inv = await client
      .send(new ssm.GetCommandInvocationCommand({ CommandId: id, InstanceId: inputs.workerInstanceId }))
      .catch((e: { name?: string }) => (e.name === 'InvocationDoesNotExist' ? null : Promise.reject(e)));
    if (!inv || inv.Status === 'Pending' || inv.Status === 'InProgress' || inv.Status === 'Delayed') continue;
    if (inv.Status !== 'Success')
      throw new Error(`pgrelocate ${args[0]} on ${inputs.workerInstanceId} ended ${inv.Status}: ${inv.StandardErrorContent ?? ''}`);
    const text = inv.StandardOutputContent ?? '';
    const start = text.lastIndexOf('\n{');
    return JSON.parse(start >= 0 ? text.slice(start + 1) : text);
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

/** create: dump-restore migrates; logical syncs (and cuts over when created with phase cutover). */
export async function startRun(inputs: RunInputs): Promise<RunOutputs> {
  if (inputs.strategy === 'dump-restore') {
    const report = (
      inputs.mode === 'ssm'
        ? await viaSsm(inputs, workerCommand(inputs, 'migrate'), 7 * 86400)
        : (
            await engine().migrate('dump-restore', endpoints(inputs).source, endpoints(inputs).target, {
              dumpRestore: engineOptionsOf(inputs),
            })
          ).report
    ) as { runId: string; seconds: number; verification: { ok: boolean } | null };
    return {
      ...inputs,
      ...empty,
      runId: report.runId,
      status: 'done',
      copySeconds: report.seconds,
      blackoutSeconds: report.seconds,
      verified: report.verification?.ok ?? null,
      newTargetUrl: inputs.target,
    };
  }
  const s = (
    inputs.mode === 'ssm'
      ? await viaSsm(inputs, workerCommand(inputs, 'sync'), inputs.options.waitSeconds ?? defaultOf('waitSeconds'))
      : (await engine().sync(inputs.strategy, endpoints(inputs).source, endpoints(inputs).target, engineOptionsOf(inputs))).report
  ) as { runId: string; copy?: { seconds: number } | null; catchUpSeconds?: number | null };
  const synced: RunOutputs = {
    ...inputs,
    ...empty,
    runId: s.runId,
    status: 'streaming',
    copySeconds: s.copy?.seconds ?? null,
    catchUpSeconds: s.catchUpSeconds ?? null,
  };
  return inputs.phase === 'cutover' ? { ...synced, ...(await cutoverRun(inputs)) } : synced;
}

async function cutoverRun(inputs: RunInputs): Promise<Partial<RunOutputs>> {
  const c = (
    inputs.mode === 'ssm'
      ? await viaSsm(inputs, workerCommand(inputs, 'cutover'), 3600)
      : await engine().cutover(endpoints(inputs).source, endpoints(inputs).target, engineOptionsOf(inputs))
  ) as { blackoutSeconds: number; verification: { ok: boolean } | null };
  return { status: 'done', blackoutSeconds: c.blackoutSeconds, verified: c.verification?.ok ?? null, newTargetUrl: inputs.target };
}

/** update: the only move is sync → cutover; options changes are recorded. */
export async function advanceRun(olds: RunOutputs, news: RunInputs): Promise<RunOutputs> {
  if (olds.phase === 'cutover' && news.phase === 'sync') {
    throw new Error(
      'A run that was cut over cannot go back to sync: the source is read-only and the application moved. Create a new stack for a new migration.',
    );
  }
  const base: RunOutputs = { ...olds, ...news };
  if (news.strategy !== 'dump-restore' && olds.phase === 'sync' && news.phase === 'cutover' && olds.status !== 'done') {
    return { ...base, ...(await cutoverRun(news)) };
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
  if (props.strategy !== 'dump-restore') await engine().cleanup(source, target);
  else await (require('../engine/state') as typeof import('../engine/state')).dropState(target);
}
