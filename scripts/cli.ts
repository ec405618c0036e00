/**
 * The `pgrelocate` command line. It only registers the commands (one file
 * each under commands/, exporting its work and its registration) and turns
 * every failure into its message, its fix and its exit code, once.
 * Every command takes --source/--target (or PGRELOCATE_SOURCE_URL /
 * PGRELOCATE_TARGET_URL) and --json; exit codes are listed in docs/troubleshooting.md.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command, CommanderError } from 'commander';
import { redact } from '../engine/conn';
import { ExitCode, isPgrelocateError } from '../engine/errors';
import { sweepPassfiles } from '../engine/tool-exec';
import { register as check } from './commands/check';
import { register as plan } from './commands/plan';
import { register as migrate } from './commands/migrate';
import { register as sync } from './commands/sync';
import { register as copy } from './commands/copy';
import { register as cutover } from './commands/cutover';
import { register as verify } from './commands/verify';
import { register as status } from './commands/status';
import { register as cleanup } from './commands/cleanup';
import { register as rollback } from './commands/rollback';

/** The package's version, for --version. */
function version(): string {
  try {
    return (JSON.parse(readFileSync(path.resolve(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function buildProgram(): Command {
  const program = new Command('pgrelocate')
    .description('Move a PostgreSQL database to a new server or major version.')
    .version(version(), '-V, --version')
    .showHelpAfterError()
    .exitOverride();
  for (const register of [check, plan, migrate, sync, copy, cutover, rollback, verify, status, cleanup]) register(program);
  return program;
}

/** Run the CLI; resolves to the exit code. */
export async function main(argv: readonly string[] = process.argv): Promise<number> {
  // Passfiles a killed pgrelocate could not remove go at the next start.
  sweepPassfiles();
  const program = buildProgram();
  const json = argv.includes('--json');
  try {
    await program.parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      return e.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    if (isPgrelocateError(e)) {
      if (json)
        process.stdout.write(JSON.stringify({ ok: false, error: { code: e.code, message: e.message, fix: e.fix } }, null, 2) + '\n');
      process.stderr.write(`pgrelocate: ${e.message}\n  fix: ${e.fix}\n`);
      return e.exitCode;
    }
    const msg = redact((e as Error).stack ?? String(e));
    if (json)
      process.stdout.write(
        JSON.stringify({ ok: false, error: { code: 'internal', message: redact((e as Error).message ?? String(e)) } }) + '\n',
      );
    process.stderr.write(`pgrelocate: unexpected error: ${msg}\n`);
    return ExitCode.failed;
  }
}

/**
 * End the process with `code` once stdout and stderr are flushed. The CLI
 * exits explicitly: after a failure, a client, timer or child that a failed
 * step left behind must not keep Node alive with the report already printed.
 */
export function exitWith(code: number): void {
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

if (require.main === module) {
  void main().then(exitWith);
}
