/** `pgrelocate copy`. */
import { clusterSelection, runClusterCopy } from './cluster';
import { Command } from 'commander';
import { copyOnce } from '../../engine/copy/once';

import { formatCopy } from '../../engine/report';
import { endpoints, withEndpoints, out, progressPrinter, withOptions, streamingOptions, type CliOpts, withProgress } from './shared';

/** The command's work, once commander has read the command line. */
export async function runCopy(o: CliOpts): Promise<void> {
  const sel = clusterSelection(o);
  if (sel) return runClusterCopy(o, sel);
  const { source, target } = endpoints(o);
  const r = await copyOnce(source, target, streamingOptions(o, 'copy'), progressPrinter(o));
  out(o, r, formatCopy(r));
}

/** Register `copy` on the program. */
export function register(program: Command): void {
  withOptions(withProgress(withEndpoints(program.command('copy'))), 'copy')
    .description('schema, data under one snapshot, indexes, sequences, large objects, verified — once, no streaming (stop writes first)')
    .action(runCopy);
}
