/** `pgrelocate cleanup`. */
import { clusterSelection, runClusterCleanup, withDatabaseFlags } from './cluster';
import { Command, Option } from 'commander';
import { parseUrl } from '../../engine/conn';
import { PgrelocateError } from '../../engine/errors';
import { cleanup } from '../../engine/strategies';

import { withRunLock } from '../../engine/run-lock';
import { dropState } from '../../engine/state';
import { type CommonOpts, out } from './shared';

/** The command's work, once commander has read the command line. */
export async function runCleanup(o: CommonOpts & { unfence?: boolean; bucardoUrl?: string }): Promise<void> {
  const sel = clusterSelection(o as Record<string, unknown>);
  if (sel) return runClusterCleanup(o, sel);
  if (!o.target) throw new PgrelocateError('usage', 'No target given.', 'Pass --target postgresql://… or set PGRELOCATE_TARGET_URL.');
  const target = parseUrl(o.target, 'target URL');
  let removed: string[];
  if (o.source)
    removed = await cleanup(parseUrl(o.source, 'source URL'), target, {
      unfence: o.unfence ?? false,
      ...(o.bucardoUrl ? { bucardoUrl: parseUrl(o.bucardoUrl, 'Bucardo control URL') } : {}),
    });
  else {
    await withRunLock(target, 'cleanup', () => dropState(target));
    removed = ['schema pgrelocate (target)'];
  }
  out(o, { removed }, removed.length ? `removed:\n  ${removed.join('\n  ')}` : 'nothing to remove');
}

/** Register `cleanup` on the program. */
export function register(program: Command): void {
  withDatabaseFlags(program.command('cleanup'))
    .description(
      "remove pgrelocate's artefacts: subscription (target), slot and publication (source), REPLICA IDENTITY changes, state schema",
    )
    .addOption(new Option('--source <url>', 'source database URL (needed for slot and publication)').env('PGRELOCATE_SOURCE_URL'))
    .addOption(new Option('--target <url>', 'target database URL').env('PGRELOCATE_TARGET_URL'))
    .option('--unfence', 'also lift a write fence left on the source')
    .addOption(
      new Option('--bucardo-url <url>', "bucardo: the control server's superuser (to drop its role too)").env('PGRELOCATE_BUCARDO_URL'),
    )
    .option('--json', 'print machine-readable JSON on stdout')
    .action(runCleanup);
}
