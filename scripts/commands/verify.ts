/** `pgrelocate verify`. */
import { clusterSelection, runClusterVerify, withDatabaseFlags } from './cluster';
import { Command, Option } from 'commander';
import { ExitCode } from '../../engine/errors';

import { formatVerification } from '../../engine/report';
import { verify } from '../../engine/verify';
import { readRun } from '../../engine/state';
import type { TableFilter } from '../../engine/filter';
import { verifyStreaming } from '../../engine/strategies';
import { type CommonOpts, endpoints, withEndpoints, out, parser, progressPrinter, withProgress } from './shared';

/** The command's work, once commander has read the command line. */
export async function runVerify(
  o: CommonOpts & { verify?: 'checksum' | 'count'; mode?: 'checksum' | 'count'; jobs?: number; quiet?: boolean; verbose?: boolean },
): Promise<void> {
  const sel = clusterSelection(o as Record<string, unknown>);
  if (sel) return runClusterVerify(o, sel);
  const { source, target } = endpoints(o);
  const mode = o.verify ?? o.mode ?? 'checksum';
  const jobs = o.jobs ?? 2;
  // A streaming run compares at a pinned point (the target caught up with a moment of the source), not a moving source.
  const pinned = await verifyStreaming(source, target, { mode, jobs }, progressPrinter(o));
  // The filter the last run on the target moved with: what it left out is not compared.
  const filter = ((await readRun(target))?.meta as { filter?: TableFilter } | null)?.filter;
  const v = pinned ?? (await verify(source, target, { mode, jobs, ...(filter ? { filter } : {}) }));
  const head = pinned
    ? [
        `pinned${pinned.lsn ? ` at the source's LSN ${pinned.lsn}` : ''}, then compared while streaming`,
        ...(pinned.excluded.length ? [`not compared here (copied again at cutover): ${pinned.excluded.join(', ')}`] : []),
        'sequences and large objects are not replicated: the cutover copies them inside its fence',
      ]
    : [];
  out(o, v, [...head, formatVerification(v)].join('\n'));
  if (!v.ok) process.exitCode = ExitCode.verifyFailed;
}

/** Register `verify` on the program. */
export function register(program: Command): void {
  withDatabaseFlags(withProgress(withEndpoints(program.command('verify'))))
    .description(
      'compare source and target: row counts, primary key ranges, checksums, sequences, large objects; a streaming run at a pinned point, while it streams',
    )
    // --verify, as on every other command; --mode is its earlier name, kept for scripts.
    .addOption(new Option('--verify <mode>', 'count or checksum (default checksum)').choices(['checksum', 'count']))
    .addOption(new Option('--mode <mode>').choices(['checksum', 'count']).hideHelp())
    .option('--jobs <n>', 'parallel sessions per side (default 2)', parser('jobs'))
    .action(runVerify);
}
