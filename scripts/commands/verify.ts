/** `pgrelocate verify`. */
import { Command, Option } from 'commander';
import { ExitCode } from '../../engine/errors';

import { formatVerification } from '../../engine/report';
import { verify } from '../../engine/verify';
import { type CommonOpts, endpoints, withEndpoints, out, parser } from './shared';

/** The command's work, once commander has read the command line. */
export async function runVerify(
  o: CommonOpts & { verify?: 'checksum' | 'count'; mode?: 'checksum' | 'count'; jobs?: number },
): Promise<void> {
  const { source, target } = endpoints(o);
  const v = await verify(source, target, { mode: o.verify ?? o.mode ?? 'checksum', jobs: o.jobs ?? 2 });
  out(o, v, formatVerification(v));
  if (!v.ok) process.exitCode = ExitCode.verifyFailed;
}

/** Register `verify` on the program. */
export function register(program: Command): void {
  withEndpoints(program.command('verify'))
    .description('compare source and target: row counts, primary key ranges, checksums, sequences, large objects')
    // --verify, as on every other command; --mode is its earlier name, kept for scripts.
    .addOption(new Option('--verify <mode>', 'count or checksum (default checksum)').choices(['checksum', 'count']))
    .addOption(new Option('--mode <mode>').choices(['checksum', 'count']).hideHelp())
    .option('--jobs <n>', 'parallel sessions per side (default 2)', parser('jobs'))
    .action(runVerify);
}
