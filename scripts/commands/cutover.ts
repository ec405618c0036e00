/** `pgrelocate cutover`. */
import { clusterSelection, runClusterCutover } from './cluster';
import { Command, Option } from 'commander';
import { STREAMING_STRATEGIES } from '../../engine/strategies/names';
import { PgrelocateError } from '../../engine/errors';
import { previousRun } from '../../engine/streaming/options';
import { cutover } from '../../engine/strategies';

import { formatCutover } from '../../engine/report';
import { endpoints, withEndpoints, out, progressPrinter, withOptions, streamingOptions, type CliOpts, withProgress } from './shared';

/** The command's work, once commander has read the command line. */
export async function runCutover(o: CliOpts & { strategy?: string }): Promise<void> {
  const sel = clusterSelection(o);
  if (sel) return runClusterCutover(o, sel);
  const { source, target } = endpoints(o);
  if (o.strategy) {
    const prev = await previousRun(target);
    if (prev && prev.strategy !== o.strategy)
      throw new PgrelocateError(
        'usage',
        `The run recorded on this target uses ${prev.strategy}, not ${o.strategy}; nothing was changed.`,
        `Run pgrelocate cutover --strategy ${prev.strategy}, or without --strategy.`,
      );
  }
  const r = await cutover(source, target, streamingOptions(o, 'cutover'), progressPrinter(o));
  out(o, r, formatCutover(r));
}

/** Register `cutover` on the program. */
export function register(program: Command): void {
  withOptions(withProgress(withEndpoints(program.command('cutover'))), 'cutover')
    .description(
      'logical: gate on lag, fence writes, wait for the final LSN, copy sequences/unlogged/large objects, refresh matviews, verify, remove replication',
    )
    .addOption(
      new Option('--strategy <name>', "the run's streaming strategy (default: the one recorded on the target)").choices(
        STREAMING_STRATEGIES,
      ),
    )
    .action(runCutover);
}
