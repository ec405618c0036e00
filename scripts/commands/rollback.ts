/** `pgrelocate rollback`. */
import { Command } from 'commander';
import { rollback } from '../../engine/strategies';
import type { RollbackReport } from '../../engine/streaming/rollback';
import { formatDuration } from '../../engine/units';
import { endpoints, withEndpoints, out, progressPrinter, withOptions, streamingOptions, type CliOpts, withProgress } from './shared';

/** The rollback's report as the CLI prints it. Pure. */
export function formatRollback(r: RollbackReport): string {
  return [
    `pgrelocate — rolled back (run ${r.runId}): the application goes back to ${r.source}`,
    `  write-blackout    ${formatDuration(r.blackoutSeconds)} (the new server fenced → the old one writable)`,
    '  steps',
    ...r.steps.map((s) => `    ${s.name.padEnd(24)} ${formatDuration(s.seconds).padStart(9)}`),
    `  copied back       ${r.sequences} sequences, ${r.recopiedRows} rows of tables replication does not carry`,
    '  the new server is fenced now; pgrelocate cleanup removes what is left',
  ].join('\n');
}

/** The command's work, once commander has read the command line. */
export async function runRollbackCommand(o: CliOpts): Promise<void> {
  const { source, target } = endpoints(o);
  const r = await rollback(source, target, streamingOptions(o, 'rollback'), progressPrinter(o));
  out(o, r, formatRollback(r));
}

/** Register `rollback` on the program. */
export function register(program: Command): void {
  withOptions(withProgress(withEndpoints(program.command('rollback')) as Command), 'rollback')
    .description(
      'after a cutover with --rollback: move the application back to the old source — the new server fenced, its changes applied there, the old one writable again',
    )
    .action(runRollbackCommand);
}
