/**
 * The `pgrelocate` command line. Thin: parse options, call the engine, print.
 * Every command takes --source/--target (or PGRELOCATE_SOURCE_URL /
 * PGRELOCATE_TARGET_URL) and --json; exit codes are listed in the README.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { hasErrors, runChecks } from '../engine/check';
import { STRATEGIES, type Strategy } from '../engine/strategies/names';
import { parseUrl, redact, type ConnInfo } from '../engine/conn';
import { ExitCode, isPgrelocateError, PgrelocateError } from '../engine/errors';
import { MigrationFailed } from '../engine/strategies/dump-restore/run';
import { chooseStrategy, onlyDumpRestoreText, plan } from '../engine/plan';
import { previousRun, type StreamingOptions } from '../engine/streaming/options';
import { copyOnce } from '../engine/copy/once';
import { cleanup, cutover, migrate, status, sync, type StreamingStrategy } from '../engine/strategies';
import { formatBytes, parseSize } from '../engine/units';
import { defaultWorkDir, preflight, type Preflight } from '../engine/preflight';
import { progressView } from '../engine/progress-view';
import {
  formatCopy,
  formatCutover,
  formatFindings,
  formatLiveness,
  formatStepStatus,
  formatReport,
  formatSyncOutcome,
  formatVerification,
} from '../engine/report';
import type { RunEvent } from '../engine/runner';
import { withRunLock } from '../engine/run-lock';
import { sweepPassfiles } from '../engine/tool-exec';
import { dropState, readRun } from '../engine/state';
import { verify } from '../engine/verify';

interface CommonOpts {
  source?: string;
  target?: string;
  json?: boolean;
}

/** An integer option in [min, max], refused with its name before anything connects. */
function int(name: string, min = 0, max = Number.MAX_SAFE_INTEGER) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\s*\d+\s*$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`${name} must be a whole number from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ' up'}`);
    return n;
  };
}

/** A size option ("16MB"), checked when the command line is read. */
function size(name: string) {
  return (v: string): string => {
    try {
      parseSize(v);
    } catch {
      throw new InvalidArgumentError(`${name} must be a size such as 16MB, 2GB or 4096 (bytes)`);
    }
    return v;
  };
}

function endpoints(o: CommonOpts): { source: ConnInfo; target: ConnInfo } {
  if (!o.source) throw new PgrelocateError('usage', 'No source given.', 'Pass --source postgresql://… or set PGRELOCATE_SOURCE_URL.');
  if (!o.target) throw new PgrelocateError('usage', 'No target given.', 'Pass --target postgresql://… or set PGRELOCATE_TARGET_URL.');
  return { source: parseUrl(o.source, 'source URL'), target: parseUrl(o.target, 'target URL') };
}

function withEndpoints(cmd: Command): Command {
  return cmd
    .addOption(new Option('--source <url>', 'source database URL').env('PGRELOCATE_SOURCE_URL'))
    .addOption(new Option('--target <url>', 'target database URL').env('PGRELOCATE_TARGET_URL'))
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

interface LogicalCliOpts {
  jobs?: number;
  workDir?: string;
  force?: boolean;
  skipGlobals?: boolean;
  splitLargerThan?: string;
  replicaIdentityFull?: boolean;
  sourceUrlFromTarget?: string;
  maxLag?: string;
  catchUpTimeout?: number;
  applyTimeout?: number;
  verify?: 'checksum' | 'count' | 'none';
  preHook?: string;
  postHook?: string;
  batchSize?: number;
  batchPause?: number;
  bucardoUrl?: string;
  bucardoParallelCopy?: boolean;
}

/** Options of the logical strategy, shared by sync, cutover and migrate. */
function withLogicalOptions(cmd: Command): Command {
  const has = (flag: string): boolean => cmd.options.some((x) => x.long === flag);
  if (!has('--jobs')) cmd.option('--jobs <n>', 'parallel jobs (default: cores, at least 2)', int('--jobs', 1));
  if (!has('--work-dir')) cmd.option('--work-dir <dir>', 'scratch directory', defaultWorkDir());
  if (!has('--force')) cmd.option('--force', 'allow a non-empty target');
  if (!has('--skip-globals')) cmd.option('--skip-globals', 'do not migrate roles');
  if (!has('--verify'))
    cmd.addOption(
      new Option('--verify <mode>', 'verification inside the cutover window (default count)').choices(['checksum', 'count', 'none']),
    );
  return cmd
    .option(
      '--split-larger-than <size>',
      'copy tables larger than this in parallel ranges (default: automatic, 64MB–1GB)',
      size('--split-larger-than'),
    )
    .option('--replica-identity-full', 'allow REPLICA IDENTITY FULL on source tables without a usable key (restored at cleanup)')
    .option('--source-url-from-target <url>', 'the source URL as the target server reaches it, if different')
    .option('--max-lag <size>', 'cutover starts only within this much WAL of the source', size('--max-lag'), '16MB')
    .option('--catch-up-timeout <seconds>', 'how long to wait for catch-up', int('--catch-up-timeout'), 600)
    .option('--apply-timeout <seconds>', 'how long cutover waits for the final LSN once writes are fenced', int('--apply-timeout'), 60)
    .option('--pre-hook <command>', 'shell command run before the write fence (maintenance on, scale to zero)')
    .option('--post-hook <command>', 'shell command run after the switch (point the app at the target, scale up)')
    .option('--batch-size <n>', 'pglogical: tables added to the replication sets per batch (default: all at once)', int('--batch-size', 1))
    .option('--batch-pause <seconds>', 'pglogical: pause between batches once a batch replicates', int('--batch-pause'))
    .addOption(
      new Option('--bucardo-url <url>', "bucardo: a superuser of the PostgreSQL (with PL/Perl) that holds Bucardo's control database").env(
        'PGRELOCATE_BUCARDO_URL',
      ),
    )
    .option('--bucardo-parallel-copy', "bucardo: pgrelocate's parallel copy for the first data, Bucardo for the changes only");
}

function logicalOptions(o: LogicalCliOpts): Partial<StreamingOptions> {
  return {
    ...(o.jobs ? { jobs: o.jobs } : {}),
    ...(o.workDir ? { workDir: o.workDir } : {}),
    force: o.force ?? false,
    skipGlobals: o.skipGlobals ?? false,
    ...(o.splitLargerThan ? { splitBytes: parseSize(o.splitLargerThan) } : {}),
    replicaIdentityFull: o.replicaIdentityFull ?? false,
    ...(o.sourceUrlFromTarget ? { sourceForTarget: parseUrl(o.sourceUrlFromTarget, 'source URL from the target') } : {}),
    maxLagBytes: parseSize(o.maxLag ?? '16MB'),
    ...(o.catchUpTimeout !== undefined ? { catchUpTimeout: o.catchUpTimeout } : {}),
    ...(o.applyTimeout !== undefined ? { applyTimeout: o.applyTimeout } : {}),
    verify: o.verify ?? 'count',
    ...(o.preHook ? { preHook: o.preHook } : {}),
    ...(o.postHook ? { postHook: o.postHook } : {}),
    ...(o.batchSize !== undefined ? { batchSize: o.batchSize } : {}),
    ...(o.batchPause !== undefined ? { batchPause: o.batchPause } : {}),
    bucardoParallelCopy: o.bucardoParallelCopy ?? false,
    ...(o.bucardoUrl ? { bucardoUrl: parseUrl(o.bucardoUrl, 'Bucardo control URL') } : {}),
  };
}

/**
 * The strategy for a command run without --strategy: the one of a run already
 * recorded on the target (a resumed sync, a cutover), else what plan picks.
 * When only dump-restore is possible it refuses, naming each reason and its
 * fix, unless the command may fall back to it (never: a full-downtime run
 * must be asked for).
 */
async function choose(
  source: ConnInfo,
  target: ConnInfo,
  o: LogicalCliOpts & { quiet?: boolean },
  command: string,
): Promise<{ strategy: Strategy; preflight?: Preflight }> {
  const say = (text: string): void => {
    if (!o.quiet) process.stderr.write(text + '\n');
  };
  const prev = await previousRun(target);
  const prevPhase = (prev?.meta as { phase?: string } | null)?.phase;
  if (prev && prevPhase !== 'done') {
    say(`strategy: ${prev.strategy} — continuing run ${prev.id} recorded on the target`);
    return { strategy: prev.strategy as Strategy };
  }
  const pre = await preflight(source, target, {
    strategy: 'logical',
    force: o.force ?? false,
    replicaIdentityFull: o.replicaIdentityFull ?? false,
    ...(o.workDir ? { workDir: o.workDir } : {}),
  });
  const c = chooseStrategy(undefined, pre.facts);
  if (c.streamingBlockers) {
    // What blocks every strategy (a non-empty target, an older target) first: dump-restore would not fix it.
    const everywhere = runChecks({ ...pre.facts, strategy: 'dump-restore' }).filter((f) => f.level === 'error');
    throw new PgrelocateError(
      'check-failed',
      [...(everywhere.length ? [formatFindings(everywhere)] : []), onlyDumpRestoreText(c.streamingBlockers, command)].join('\n'),
      everywhere.length ? 'Fix the errors above; then run check again.' : 'Fix the above, or pass --strategy dump-restore.',
    );
  }
  say(`strategy: ${c.strategy} — ${c.reason}`);
  return { strategy: c.strategy, preflight: pre };
}

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

  withEndpoints(program.command('check'))
    .description('inspect both servers and report blocking errors and warnings (changes nothing)')
    .addOption(new Option('--strategy <name>', 'strategy to check for (default: what plan picks)').choices(STRATEGIES))
    .option('--force', 'allow a non-empty target')
    .option('--replica-identity-full', 'allow REPLICA IDENTITY FULL on tables without a usable key')
    .option('--work-dir <dir>', 'where dumps are written', defaultWorkDir())
    .action(async (o: CommonOpts & { strategy?: Strategy; force?: boolean; workDir: string; replicaIdentityFull?: boolean }) => {
      const { source, target } = endpoints(o);
      const pre = await preflight(source, target, {
        strategy: o.strategy ?? 'logical',
        force: o.force ?? false,
        workDir: o.workDir,
        replicaIdentityFull: o.replicaIdentityFull ?? false,
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
    });

  withEndpoints(program.command('plan'))
    .description('choose a strategy and list the steps a migration would run, with estimates (changes nothing)')
    .addOption(new Option('--strategy <name>', 'force a strategy').choices(STRATEGIES))
    .option('--jobs <n>', 'parallel jobs', int('--jobs', 1))
    .option('--force', 'allow a non-empty target')
    .option('--replica-identity-full', 'allow REPLICA IDENTITY FULL on tables without a usable key')
    .action(async (o: CommonOpts & { strategy?: Strategy; jobs?: number; force?: boolean; replicaIdentityFull?: boolean }) => {
      const { source, target } = endpoints(o);
      const p = await plan(source, target, {
        ...(o.strategy ? { strategy: o.strategy } : {}),
        ...(o.jobs ? { jobs: o.jobs } : {}),
        force: o.force ?? false,
        replicaIdentityFull: o.replicaIdentityFull ?? false,
      });
      out(o, p, p.text);
      if (!p.ok) process.exitCode = ExitCode.checkFailed;
    });

  const migrateCmd = withEndpoints(program.command('migrate'))
    .description('the whole way: dump-restore (globals, dump, restore, vacuum, verify) or logical (sync, then cutover)')
    .addOption(new Option('--strategy <name>', 'migration strategy (default: what plan picks)').choices(STRATEGIES))
    .option('--jobs <n>', 'parallel jobs for dump, restore, vacuum and verify (default: cores, at least 2)', int('--jobs', 1))
    .option('--work-dir <dir>', 'where the dump is written (needs the source table size free)', defaultWorkDir())
    .option('--force', 'allow a non-empty target: objects in the dump replace existing ones')
    .option('--skip-globals', 'do not migrate roles')
    .option('--no-owner', 'restore without object owners (everything owned by the target user)')
    .option('--no-privileges', 'restore without GRANTs')
    .option('--compress <level>', 'pg_dump compression level, 0-9', int('--compress', 0, 9), 0)
    .option('--keep-dump', 'keep the dump directory after success')
    .addOption(
      new Option('--verify <mode>', 'verification (default: checksum for dump-restore, count inside the cutover window)').choices([
        'checksum',
        'count',
        'none',
      ]),
    )
    .option('--quiet', 'no progress on stderr');
  withLogicalOptions(migrateCmd).action(
    async (
      o: CommonOpts &
        LogicalCliOpts & {
          strategy?: Strategy;
          jobs?: number;
          workDir: string;
          force?: boolean;
          skipGlobals?: boolean;
          owner: boolean;
          privileges: boolean;
          compress: number;
          keepDump?: boolean;
          quiet?: boolean;
        },
    ) => {
      const { source, target } = endpoints(o);
      const chosen = o.strategy ? { strategy: o.strategy } : await choose(source, target, o, 'migrate');
      const emit = progressPrinter(o);
      try {
        const m = await migrate(
          chosen.strategy,
          source,
          target,
          {
            dumpRestore: {
              ...(o.jobs ? { jobs: o.jobs } : {}),
              workDir: o.workDir,
              force: o.force ?? false,
              skipGlobals: o.skipGlobals ?? false,
              noOwner: !o.owner,
              noPrivileges: !o.privileges,
              compress: o.compress,
              keepDump: o.keepDump ?? false,
              verify: o.verify ?? 'checksum',
            },
            streaming: { ...logicalOptions(o), ...(chosen.preflight ? { preflight: chosen.preflight } : {}) },
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
    },
  );

  withLogicalOptions(withEndpoints(program.command('sync')))
    .description(
      'logical: schema, snapshot-consistent parallel copy, then stream every change; pglogical: schema, nodes, tables in batches; returns once streaming (resumes if interrupted)',
    )
    .addOption(
      new Option('--strategy <name>', 'streaming strategy (default: what plan picks)').choices(['logical', 'pglogical', 'bucardo']),
    )
    .option('--quiet', 'no progress on stderr')
    .action(async (o: CommonOpts & LogicalCliOpts & { quiet?: boolean; strategy?: StreamingStrategy }) => {
      const { source, target } = endpoints(o);
      const chosen = o.strategy ? { strategy: o.strategy } : await choose(source, target, o, 'migrate');
      const picked = chosen.strategy;
      if (picked === 'dump-restore')
        throw new PgrelocateError('usage', 'sync streams; dump-restore does not.', 'Run pgrelocate migrate --strategy dump-restore.');
      const s = await sync(
        picked,
        source,
        target,
        { ...logicalOptions(o), ...(chosen.preflight ? { preflight: chosen.preflight } : {}) },
        progressPrinter(o),
      );
      out(o, s.report, formatSyncOutcome(s));
    });

  withLogicalOptions(withEndpoints(program.command('copy')))
    .description('schema, data under one snapshot, indexes, sequences, large objects, verified — once, no streaming (stop writes first)')
    .option('--quiet', 'no progress on stderr')
    .action(async (o: CommonOpts & LogicalCliOpts & { quiet?: boolean }) => {
      const { source, target } = endpoints(o);
      const r = await copyOnce(source, target, logicalOptions(o), progressPrinter(o));
      out(o, r, formatCopy(r));
    });

  withLogicalOptions(withEndpoints(program.command('cutover')))
    .description(
      'logical: gate on lag, fence writes, wait for the final LSN, copy sequences/unlogged/large objects, refresh matviews, verify, remove replication',
    )
    .addOption(
      new Option('--strategy <name>', "the run's streaming strategy (default: the one recorded on the target)").choices([
        'logical',
        'pglogical',
        'bucardo',
      ]),
    )
    .option('--quiet', 'no progress on stderr')
    .action(async (o: CommonOpts & LogicalCliOpts & { quiet?: boolean; strategy?: string }) => {
      const { source, target } = endpoints(o);
      if (o.strategy) {
        const prev = await previousRun(target);
        if (prev && prev.strategy !== o.strategy)
          throw new PgrelocateError(
            'usage',
            `The run recorded on this target uses ${prev.strategy}, not ${o.strategy}; nothing was changed.`,
            `Run pgrelocate cutover --strategy ${prev.strategy}, or without --strategy.`,
          );
      }
      const r = await cutover(source, target, logicalOptions(o), progressPrinter(o));
      out(o, r, formatCutover(r));
    });

  withEndpoints(program.command('verify'))
    .description('compare source and target: row counts, primary key ranges, checksums, sequences, large objects')
    // --verify, as on every other command; --mode is its earlier name, kept for scripts.
    .addOption(new Option('--verify <mode>', 'count or checksum (default checksum)').choices(['checksum', 'count']))
    .addOption(new Option('--mode <mode>').choices(['checksum', 'count']).hideHelp())
    .option('--jobs <n>', 'parallel sessions per side', int('--jobs', 1), 2)
    .action(async (o: CommonOpts & { verify?: 'checksum' | 'count'; mode?: 'checksum' | 'count'; jobs: number }) => {
      const { source, target } = endpoints(o);
      const v = await verify(source, target, { mode: o.verify ?? o.mode ?? 'checksum', jobs: o.jobs });
      out(o, v, formatVerification(v));
      if (!v.ok) process.exitCode = ExitCode.verifyFailed;
    });

  program
    .command('status')
    .description("show the latest run recorded in the target's pgrelocate schema; with --source, the replication lag too")
    .addOption(new Option('--source <url>', 'source database URL (for the lag)').env('PGRELOCATE_SOURCE_URL'))
    .addOption(new Option('--target <url>', 'target database URL').env('PGRELOCATE_TARGET_URL'))
    .option('--json', 'print machine-readable JSON on stdout')
    .action(async (o: CommonOpts) => {
      if (!o.target) throw new PgrelocateError('usage', 'No target given.', 'Pass --target postgresql://… or set PGRELOCATE_TARGET_URL.');
      const target = parseUrl(o.target, 'target URL');
      const st = await status(o.source ? parseUrl(o.source, 'source URL') : null, target);
      const run = st.run ?? (await readRun(target));
      if (!run) {
        out(o, { run: null }, 'No pgrelocate run recorded on this target.');
        return;
      }
      const text = [
        `run ${run.id}  ${run.strategy}  ${run.status}${st.phase ? ` (phase ${st.phase})` : run.phase && run.status === 'running' ? ` (at ${run.phase})` : ''}`,
        `  source ${run.source}`,
        `  started ${run.startedAt}${run.finishedAt ? `, finished ${run.finishedAt}` : ''}`,
        ...run.steps.map((s) => formatStepStatus(s)),
        ...formatLiveness(run),
        ...(st.lag
          ? [
              `  lag ${formatBytes(st.lag.bytes)}${st.targetLagSeconds !== null ? `, ${st.targetLagSeconds.toFixed(1)}s since the target's last report` : ''}${st.lag.slotActive ? '' : ' (subscription not connected)'}`,
            ]
          : []),
        ...Object.entries(st.bucardo ?? {})
          .filter(([k]) => /^(Current state|Last good|Last bad|Last error|Onetimecopy|error)$/.test(k))
          .map(([k, v]) => `  bucardo ${k.toLowerCase()}: ${v}`),
      ].join('\n');
      out(
        o,
        { ...run, phase: st.phase ?? run.phase, lag: st.lag, targetLagSeconds: st.targetLagSeconds, bucardo: st.bucardo ?? null },
        text,
      );
      if (run.status === 'failed') process.exitCode = ExitCode.migrationFailed;
    });

  program
    .command('cleanup')
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
    .action(async (o: CommonOpts & { unfence?: boolean; bucardoUrl?: string }) => {
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
    });

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
