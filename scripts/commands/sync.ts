/** `pgrelocate sync`. */
import { clusterSelection, runClusterSync } from './cluster';
import { Command, Option } from 'commander';
import { STREAMING_STRATEGIES } from '../../engine/strategies/names';
import { PgrelocateError } from '../../engine/errors';
import { sync, type StreamingStrategy } from '../../engine/strategies';

import { formatSyncOutcome } from '../../engine/report';
import {
  endpoints,
  withEndpoints,
  out,
  progressPrinter,
  withOptions,
  streamingOptions,
  type CliOpts,
  choose,
  withProgress,
} from './shared';

/** The command's work, once commander has read the command line. */
export async function runSync(o: CliOpts & { strategy?: StreamingStrategy }): Promise<void> {
  const sel = clusterSelection(o);
  if (sel) return runClusterSync(o, sel);
  const { source, target } = endpoints(o);
  const chosen = o.strategy ? { strategy: o.strategy } : await choose(source, target, o, 'migrate');
  const picked = chosen.strategy;
  if (picked === 'dump-restore')
    throw new PgrelocateError('usage', 'sync streams; dump-restore does not.', 'Run pgrelocate migrate --strategy dump-restore.');
  const s = await sync(
    picked,
    source,
    target,
    { ...streamingOptions(o, 'sync'), ...(chosen.preflight ? { preflight: chosen.preflight } : {}) },
    progressPrinter(o),
  );
  out(o, s.report, formatSyncOutcome(s));
}

/** Register `sync` on the program. */
export function register(program: Command): void {
  withOptions(withProgress(withEndpoints(program.command('sync'))), 'sync')
    .description(
      'logical: schema, snapshot-consistent parallel copy, then stream every change; pglogical: schema, nodes, tables in batches; returns once streaming (resumes if interrupted)',
    )
    .addOption(new Option('--strategy <name>', 'streaming strategy (default: what plan picks)').choices(STREAMING_STRATEGIES))
    .action(runSync);
}
