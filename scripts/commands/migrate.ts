/** `pgrelocate migrate`. */
import { clusterSelection, runClusterMigrate } from './cluster';
import { Command, Option } from 'commander';
import { STRATEGIES, type Strategy } from '../../engine/strategies/names';
import { MigrationFailed } from '../../engine/strategies/dump-restore/run';
import { migrate } from '../../engine/strategies';
import { engineOptions } from '../../engine/options';
import { formatCutover, formatReport, formatSyncOutcome } from '../../engine/report';
import {
  endpoints,
  withEndpoints,
  out,
  progressPrinter,
  withOptions,
  optionValues,
  filterOf,
  streamingOptions,
  CliOpts,
  choose,
  withProgress,
} from './shared';

/** The command's work, once commander has read the command line. */
export async function runMigrate(o: CliOpts & { strategy?: Strategy }): Promise<void> {
  const sel = clusterSelection(o);
  if (sel) return runClusterMigrate(o, sel);
  const { source, target } = endpoints(o);
  const chosen = o.strategy ? { strategy: o.strategy } : await choose(source, target, o, 'migrate');
  const emit = progressPrinter(o);
  try {
    const m = await migrate(
      chosen.strategy,
      source,
      target,
      {
        dumpRestore: { ...engineOptions(optionValues(o, 'migrate')), ...filterOf(optionValues(o, 'migrate')) },
        streaming: { ...streamingOptions(o, 'migrate'), ...(chosen.preflight ? { preflight: chosen.preflight } : {}) },
      },
      emit,
    );
    if (m.strategy === 'dump-restore') out(o, m.report, formatReport(m.report));
    else
      out(
        o,
        { strategy: m.strategy, sync: m.sync.report, cutover: m.cutover },
        `${formatSyncOutcome(m.sync)}\n${formatCutover(m.cutover)}`,
      );
  } catch (e) {
    if (!(e instanceof MigrationFailed)) throw e;
    out(o, e.report, formatReport(e.report));
    process.stderr.write(`pgrelocate: ${e.message}\n  fix: ${e.fix}\n`);
    process.exitCode = e.exitCode;
  }
}

/** Register `migrate` on the program. */
export function register(program: Command): void {
  const migrateCmd = withProgress(withEndpoints(program.command('migrate')))
    .description('the whole way: dump-restore (globals, dump, restore, vacuum, verify), or a streaming strategy: sync, then cutover')
    .addOption(new Option('--strategy <name>', 'migration strategy (default: what plan picks)').choices(STRATEGIES));
  withOptions(migrateCmd, 'migrate').action(runMigrate);
}
