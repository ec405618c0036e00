/** `pgrelocate status`. */
import { clusterSelection, runClusterStatus, withDatabaseFlags } from './cluster';
import { Command, Option } from 'commander';
import { parseUrl } from '../../engine/conn';
import { ExitCode, PgrelocateError } from '../../engine/errors';
import { status } from '../../engine/strategies';
import { formatBytes } from '../../engine/units';

import { formatLiveness, formatStepStatus } from '../../engine/report';
import { readRun } from '../../engine/state';
import { describeFilter, isFiltered, type TableFilter } from '../../engine/filter';
import { type CommonOpts, out } from './shared';

/** The command's work, once commander has read the command line. */
export async function runStatus(o: CommonOpts): Promise<void> {
  const sel = clusterSelection(o as Record<string, unknown>);
  if (sel) return runClusterStatus(o, sel);
  if (!o.target) throw new PgrelocateError('usage', 'No target given.', 'Pass --target postgresql://… or set PGRELOCATE_TARGET_URL.');
  const target = parseUrl(o.target, 'target URL');
  const st = await status(o.source ? parseUrl(o.source, 'source URL') : null, target);
  const run = st.run ?? (await readRun(target));
  if (!run) {
    out(
      o,
      { run: null, sourceFence: st.sourceFence },
      `No pgrelocate run recorded on this target.${st.sourceFence ? `\n  source ${st.sourceFence.text}` : ''}`,
    );
    return;
  }
  const filter = (run.meta as { filter?: TableFilter } | null)?.filter;
  const text = [
    `run ${run.id}  ${run.strategy}  ${run.status}${st.phase ? ` (phase ${st.phase})` : run.phase && run.status === 'running' ? ` (at ${run.phase})` : ''}`,
    `  source ${run.source}`,
    `  started ${run.startedAt}${run.finishedAt ? `, finished ${run.finishedAt}` : ''}`,
    ...(isFiltered(filter) ? [`  filter: ${describeFilter(filter)}`] : []),
    ...run.steps.map((s) => formatStepStatus(s)),
    ...formatLiveness(run),
    ...(st.sourceFence ? [`  source ${st.sourceFence.text}`] : []),
    ...(st.lag
      ? [
          `  lag ${formatBytes(st.lag.bytes)}${st.targetLagSeconds !== null ? `, ${st.targetLagSeconds.toFixed(1)}s since the target's last report` : ''}${st.lag.slotActive ? '' : ' (subscription not connected)'}`,
        ]
      : []),
    ...(st.schemaChanges && st.schemaChanges.length > 0
      ? [
          `  SCHEMA CHANGED on the source since the sync started; the target lacks ${st.schemaChanges.length === 1 ? 'it' : 'these'} (cutover refuses until it has them; pgrelocate sync makes the additive ones):`,
          ...st.schemaChanges.map((c) => `    ${c}`),
        ]
      : []),
    ...Object.entries(st.bucardo ?? {})
      .filter(([k]) => /^(Current state|Last good|Last bad|Last error|Onetimecopy|error)$/.test(k))
      .map(([k, v]) => `  bucardo ${k.toLowerCase()}: ${v}`),
  ].join('\n');
  out(
    o,
    {
      ...run,
      phase: st.phase ?? run.phase,
      lag: st.lag,
      targetLagSeconds: st.targetLagSeconds,
      bucardo: st.bucardo ?? null,
      sourceFence: st.sourceFence,
      schemaChanges: st.schemaChanges,
    },
    text,
  );
  if (run.status === 'failed') process.exitCode = ExitCode.migrationFailed;
}

/** Register `status` on the program. */
export function register(program: Command): void {
  withDatabaseFlags(program.command('status'))
    .description("show the latest run recorded in the target's pgrelocate schema; with --source, the replication lag too")
    .addOption(new Option('--source <url>', 'source database URL (for the lag)').env('PGRELOCATE_SOURCE_URL'))
    .addOption(new Option('--target <url>', 'target database URL').env('PGRELOCATE_TARGET_URL'))
    .option('--json', 'print machine-readable JSON on stdout')
    .action(runStatus);
}
