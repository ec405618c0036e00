/**
 * The `pgrelocate` command line. It only registers the commands (one file
 * each under commands/, exporting its work and its registration) and turns
 * every failure into its message, its fix and its exit code, once.
 * Every command takes --source/--target (or PGRELOCATE_SOURCE_URL /
 * PGRELOCATE_TARGET_URL) and --json; exit codes are listed in docs/troubleshooting.md.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
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

/**
 * Keep a large heap near what is live. By default V8 lets the old generation
 * grow to up to four times what survived its last full collection before it
 * collects again: copying 20,000 small tables, about 70 MB of live objects
 * made a 373 MiB process. With a growth factor of 1.5 the same copy peaked at
 * 224 MiB and took no longer. On a small heap the same factor costs CPU:
 * pgbench's copy (13 MB live, a heap of 35 MB at most) used 2.0 s of CPU with
 * it against 1.6 s without (medians of 4 alternating runs). So the factor
 * applies only while the heap is over 64 MiB, checked twice a second. V8
 * reads it at every collection; a heap limit, by contrast, is fixed once the
 * heap exists, and a hard one would end a run whose live data is larger. A
 * value given to node wins.
 */
let heapTuned = false;
export function tuneHeap(execArgv: readonly string[] = process.execArgv): void {
  if (heapTuned || execArgv.some((a) => a.startsWith('--heap-growing-percent'))) return;
  heapTuned = true;
  let tight = false;
  setInterval(() => {
    const large = v8.getHeapStatistics().total_heap_size > 64 * 1024 * 1024;
    if (large === tight) return;
    tight = large;
    // 0 is V8's own, dynamic factor.
    v8.setFlagsFromString(`--heap-growing-percent=${large ? 50 : 0}`);
  }, 500).unref();
}

/** Run the CLI; resolves to the exit code. */
export async function main(argv: readonly string[] = process.argv): Promise<number> {
  tuneHeap();
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
