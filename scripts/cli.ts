/**
 * The `pgferry` command line. Thin: parse options, call the engine, print.
 * Every command takes --source/--target (or PGFERRY_SOURCE_URL /
 * PGFERRY_TARGET_URL) and --json; exit codes are listed in the README.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { STRATEGIES, type Strategy } from '../engine/check';
import { parseUrl, redact, type ConnInfo } from '../engine/conn';
import { ExitCode, isPgferryError, PgferryError } from '../engine/errors';
import { migrate, type MigrationReport } from '../engine/migrate';
import { plan } from '../engine/plan';
import { defaultWorkDir, preflight } from '../engine/preflight';
import { progressView } from '../engine/progress-view';
import { formatFindings, formatReport, formatVerification } from '../engine/report';
import type { RunEvent } from '../engine/runner';
import { dropState, readRun } from '../engine/state';
import { verify } from '../engine/verify';

interface CommonOpts {
  source?: string;
  target?: string;
  json?: boolean;
}

function int(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    return n;
  };
}

function endpoints(o: CommonOpts): { source: ConnInfo; target: ConnInfo } {
  if (!o.source) throw new PgferryError('usage', 'No source given.', 'Pass --source postgresql://… or set PGFERRY_SOURCE_URL.');
  if (!o.target) throw new PgferryError('usage', 'No target given.', 'Pass --target postgresql://… or set PGFERRY_TARGET_URL.');
  return { source: parseUrl(o.source, 'source URL'), target: parseUrl(o.target, 'target URL') };
}

function withEndpoints(cmd: Command): Command {
  return cmd
    .addOption(new Option('--source <url>', 'source database URL').env('PGFERRY_SOURCE_URL'))
    .addOption(new Option('--target <url>', 'target database URL').env('PGFERRY_TARGET_URL'))
    .option('--json', 'print machine-readable JSON on stdout');
}

function out(o: CommonOpts, json: unknown, text: string): void {
  process.stdout.write((o.json ? JSON.stringify(json, null, 2) : text) + '\n');
}

/** Progress goes to stderr so --json stdout stays clean: a bar on a terminal, lines elsewhere. */
function progressPrinter(o: CommonOpts & { quiet?: boolean }): (e: RunEvent) => void {
  const view = progressView();
  return (e) => {
    if (o.quiet) return;
    if (o.json && e.type === 'progress') return;
    view(e);
  };
}

export function buildProgram(): Command {
  const program = new Command('pgferry')
    .description('Move a PostgreSQL database to a new server or major version.')
    .showHelpAfterError()
    .exitOverride();

  withEndpoints(program.command('check'))
    .description('inspect both servers and report blocking errors and warnings (changes nothing)')
    .addOption(new Option('--strategy <name>', 'strategy to check for').choices(STRATEGIES).default('dump-restore'))
    .option('--force', 'allow a non-empty target')
    .option('--work-dir <dir>', 'where dumps are written', defaultWorkDir())
    .action(async (o: CommonOpts & { strategy: Strategy; force?: boolean; workDir: string }) => {
      const { source, target } = endpoints(o);
      const pre = await preflight(source, target, { strategy: o.strategy, force: o.force ?? false, workDir: o.workDir });
      out(o, { ok: pre.ok, findings: pre.findings }, `${formatFindings(pre.findings)}\n${pre.ok ? 'check passed' : 'check FAILED'}`);
      if (!pre.ok) process.exitCode = ExitCode.checkFailed;
    });

  withEndpoints(program.command('plan'))
    .description('choose a strategy and list the steps a migration would run, with estimates (changes nothing)')
    .addOption(new Option('--strategy <name>', 'force a strategy').choices(STRATEGIES))
    .option('--jobs <n>', 'parallel jobs', int('--jobs'))
    .option('--force', 'allow a non-empty target')
    .action(async (o: CommonOpts & { strategy?: Strategy; jobs?: number; force?: boolean }) => {
      const { source, target } = endpoints(o);
      const p = await plan(source, target, {
        ...(o.strategy ? { strategy: o.strategy } : {}),
        ...(o.jobs ? { jobs: o.jobs } : {}),
        force: o.force ?? false,
      });
      out(o, p, p.text);
      if (!p.ok) process.exitCode = ExitCode.checkFailed;
    });

  withEndpoints(program.command('migrate'))
    .description('run the whole migration for a strategy (dump-restore: globals, dump, restore, vacuum, verify)')
    .addOption(new Option('--strategy <name>', 'migration strategy').choices(STRATEGIES).default('dump-restore'))
    .option('--jobs <n>', 'parallel jobs for dump, restore, vacuum and verify (default: cores, at least 2)', int('--jobs'))
    .option('--work-dir <dir>', 'where the dump is written (needs the source table size free)', defaultWorkDir())
    .option('--force', 'allow a non-empty target: objects in the dump replace existing ones')
    .option('--skip-globals', 'do not migrate roles')
    .option('--no-owner', 'restore without object owners (everything owned by the target user)')
    .option('--no-privileges', 'restore without GRANTs')
    .option('--compress <level>', 'pg_dump compression level, 0-9', int('--compress'), 0)
    .option('--keep-dump', 'keep the dump directory after success')
    .addOption(new Option('--verify <mode>', 'verification after the copy').choices(['checksum', 'count', 'none']).default('checksum'))
    .option('--quiet', 'no progress on stderr')
    .action(
      async (
        o: CommonOpts & {
          strategy: Strategy;
          jobs?: number;
          workDir: string;
          force?: boolean;
          skipGlobals?: boolean;
          owner: boolean;
          privileges: boolean;
          compress: number;
          keepDump?: boolean;
          verify: 'checksum' | 'count' | 'none';
          quiet?: boolean;
        },
      ) => {
        const { source, target } = endpoints(o);
        let report: MigrationReport;
        try {
          report = await migrate(
            source,
            target,
            {
              strategy: o.strategy,
              ...(o.jobs ? { jobs: o.jobs } : {}),
              workDir: o.workDir,
              force: o.force ?? false,
              skipGlobals: o.skipGlobals ?? false,
              noOwner: !o.owner,
              noPrivileges: !o.privileges,
              compress: o.compress,
              keepDump: o.keepDump ?? false,
              verify: o.verify,
            },
            progressPrinter(o),
          );
        } catch (e) {
          const failed = (e as { report?: MigrationReport }).report;
          if (failed) {
            out(o, failed, formatReport(failed));
            if (isPgferryError(e)) process.stderr.write(`pgferry: ${e.message}\n  fix: ${e.fix}\n`);
            process.exitCode = isPgferryError(e) ? e.exitCode : ExitCode.failed;
            return;
          }
          throw e;
        }
        out(o, report, formatReport(report));
      },
    );

  withEndpoints(program.command('verify'))
    .description('compare source and target: row counts, primary key ranges, checksums, sequences, large objects')
    .addOption(new Option('--mode <mode>', 'count or checksum').choices(['checksum', 'count']).default('checksum'))
    .option('--jobs <n>', 'parallel sessions per side', int('--jobs'), 2)
    .action(async (o: CommonOpts & { mode: 'checksum' | 'count'; jobs: number }) => {
      const { source, target } = endpoints(o);
      const v = await verify(source, target, { mode: o.mode, jobs: o.jobs });
      out(o, v, formatVerification(v));
      if (!v.ok) process.exitCode = ExitCode.verifyFailed;
    });

  program
    .command('status')
    .description("show the latest run recorded in the target's pgferry schema")
    .addOption(new Option('--target <url>', 'target database URL').env('PGFERRY_TARGET_URL'))
    .option('--run <id>', 'a specific run')
    .option('--json', 'print machine-readable JSON on stdout')
    .action(async (o: CommonOpts & { run?: string }) => {
      if (!o.target) throw new PgferryError('usage', 'No target given.', 'Pass --target postgresql://… or set PGFERRY_TARGET_URL.');
      const run = await readRun(parseUrl(o.target, 'target URL'), o.run);
      if (!run) {
        out(o, { run: null }, 'No pgferry run recorded on this target.');
        return;
      }
      const text = [
        `run ${run.id}  ${run.strategy}  ${run.status}${run.phase && run.status === 'running' ? ` (at ${run.phase})` : ''}`,
        `  source ${run.source}`,
        `  started ${run.startedAt}${run.finishedAt ? `, finished ${run.finishedAt}` : ''}`,
        ...run.steps.map(
          (s) =>
            `  ${s.name.padEnd(18)} ${s.status}${s.finishedAt ? ` (${((Date.parse(s.finishedAt) - Date.parse(s.startedAt)) / 1000).toFixed(1)}s)` : ''}`,
        ),
      ].join('\n');
      out(o, run, text);
      if (run.status === 'failed') process.exitCode = ExitCode.migrationFailed;
    });

  program
    .command('cleanup')
    .description("remove pgferry's artefacts: the pgferry state schema on the target")
    .addOption(new Option('--target <url>', 'target database URL').env('PGFERRY_TARGET_URL'))
    .option('--json', 'print machine-readable JSON on stdout')
    .action(async (o: CommonOpts) => {
      if (!o.target) throw new PgferryError('usage', 'No target given.', 'Pass --target postgresql://… or set PGFERRY_TARGET_URL.');
      await dropState(parseUrl(o.target, 'target URL'));
      out(o, { removed: ['schema pgferry'] }, 'removed: schema pgferry (target)');
    });

  return program;
}

/** Run the CLI; resolves to the exit code. */
export async function main(argv: readonly string[] = process.argv): Promise<number> {
  const program = buildProgram();
  const json = argv.includes('--json');
  try {
    await program.parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      return e.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    if (isPgferryError(e)) {
      if (json)
        process.stdout.write(JSON.stringify({ ok: false, error: { code: e.code, message: e.message, fix: e.fix } }, null, 2) + '\n');
      process.stderr.write(`pgferry: ${e.message}\n  fix: ${e.fix}\n`);
      return e.exitCode;
    }
    const msg = redact((e as Error).stack ?? String(e));
    if (json)
      process.stdout.write(
        JSON.stringify({ ok: false, error: { code: 'internal', message: redact((e as Error).message ?? String(e)) } }) + '\n',
      );
    process.stderr.write(`pgferry: unexpected error: ${msg}\n`);
    return ExitCode.failed;
  }
}

if (require.main === module) {
  void main().then((code) => {
    process.exitCode = code;
  });
}
