/** `pgrelocate plan`. */
import { clusterSelection, runClusterPlan } from './cluster';
import { Command, Option } from 'commander';
import { STRATEGIES, type Strategy } from '../../engine/strategies/names';
import { ExitCode } from '../../engine/errors';
import { plan } from '../../engine/plan';

import { endpoints, filterOf, withEndpoints, out, withOptions, optionValues, type CliOpts } from './shared';

/** The command's work, once commander has read the command line. */
export async function runPlan(o: CliOpts & { strategy?: Strategy }): Promise<void> {
  const sel = clusterSelection(o);
  if (sel) return runClusterPlan(o, sel);
  const { source, target } = endpoints(o);
  const v = optionValues(o, 'plan');
  const p = await plan(source, target, {
    ...(o.strategy ? { strategy: o.strategy } : {}),
    ...(v.jobs ? { jobs: v.jobs } : {}),
    force: v.force ?? false,
    replicaIdentityFull: v.replicaIdentityFull ?? false,
    ...(v.maxBlackout ? { maxBlackout: v.maxBlackout } : {}),
    ...filterOf(v),
  });
  out(o, p, p.text);
  if (!p.ok) process.exitCode = ExitCode.checkFailed;
}

/** Register `plan` on the program. */
export function register(program: Command): void {
  const planCmd = withEndpoints(program.command('plan'))
    .description('choose a strategy and list the steps a migration would run, with estimates (changes nothing)')
    .addOption(new Option('--strategy <name>', 'force a strategy').choices(STRATEGIES));
  withOptions(planCmd, 'plan').action(runPlan);
}
