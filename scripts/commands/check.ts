/** `pgrelocate check`. */
import { clusterSelection, runClusterCheck } from './cluster';
import { Command, Option } from 'commander';
import { hasErrors, runChecks } from '../../engine/check';
import { STRATEGIES, type Strategy } from '../../engine/strategies/names';
import { ExitCode } from '../../engine/errors';
import { chooseStrategy, onlyDumpRestoreText } from '../../engine/plan';

import { defaultWorkDir, preflight } from '../../engine/preflight';
import { formatFindings } from '../../engine/report';
import { endpoints, filterOf, withEndpoints, out, withOptions, optionValues, type CliOpts } from './shared';

/** The command's work, once commander has read the command line. */
export async function runCheck(o: CliOpts & { strategy?: Strategy }): Promise<void> {
  const sel = clusterSelection(o);
  if (sel) return runClusterCheck(o, sel);
  const { source, target } = endpoints(o);
  const v = optionValues(o, 'check');
  const pre = await preflight(source, target, {
    strategy: o.strategy ?? 'logical',
    force: v.force ?? false,
    workDir: v.workDir ?? defaultWorkDir(),
    replicaIdentityFull: v.replicaIdentityFull ?? false,
    ...filterOf(v),
  });
  const chosen = chooseStrategy(o.strategy, pre.facts);
  const findings = runChecks({ ...pre.facts, strategy: chosen.strategy });
  // Without --strategy, "only dump-restore is possible" is a failed check: the downtime is the whole run.
  const onlyDumpRestore = chosen.streamingBlockers !== undefined;
  const ok = !hasErrors(findings) && !onlyDumpRestore;
  out(
    o,
    {
      ok,
      strategy: chosen.strategy,
      reason: chosen.reason,
      onlyDumpRestore,
      streamingBlockers: chosen.streamingBlockers ?? [],
      findings,
    },
    [
      `strategy: ${chosen.strategy} (${chosen.reason})`,
      formatFindings(findings),
      ...(onlyDumpRestore ? [onlyDumpRestoreText(chosen.streamingBlockers ?? [], 'migrate')] : []),
      ok ? 'check passed' : 'check FAILED',
    ].join('\n'),
  );
  if (!ok) process.exitCode = ExitCode.checkFailed;
}

/** Register `check` on the program. */
export function register(program: Command): void {
  const checkCmd = withEndpoints(program.command('check'))
    .description('inspect both servers and report blocking errors and warnings (changes nothing)')
    .addOption(new Option('--strategy <name>', 'strategy to check for (default: what plan picks)').choices(STRATEGIES));
  withOptions(checkCmd, 'check').action(runCheck);
}
