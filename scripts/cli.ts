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
import { formatBytes } from '../engine/units';
import {
  engineOptions,
  flagOf,
  OPTIONS,
  optionsOf,
  readOption,
  type Command as OptionCommand,
  type OptionName,
  type OptionSpec,
  type OptionValues,
} from '../engine/options';
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

/** Commander's parser for a table option: the value checked, or the flag named with what it must be. */
function parser(name: OptionName) {
  return (v: string): unknown => {
    try {
      return readOption(name, v);
    } catch (e) {
      throw new InvalidArgumentError(`${flagOf(name)} ${(e as Error).message}`);
    }
  };
}

/** The options table's options of `command` (engine/options.ts), as commander options. */
function withOptions(cmd: Command, command: OptionCommand): Command {
  for (const name of optionsOf(command)) {
    const spec: OptionSpec = OPTIONS[name];
    if (!spec.flag) continue;
    const shown = spec.default !== undefined ? ` (default ${String(spec.default)})` : '';
    const o = new Option(spec.flag, spec.help + shown);
    if (spec.choices) o.choices(spec.choices);
    else if (spec.flag.includes('<')) o.argParser(parser(name));
    if (spec.env) o.env(spec.env);
    cmd.addOption(o);
  }
  return cmd;
}

/** What commander collected for the table's options of `command`, checked. */
function optionValues(o: Record<string, unknown>, command: OptionCommand): OptionValues {
  const v: Record<string, unknown> = {};
  for (const name of optionsOf(command)) {
    // Commander keeps --no-owner as owner = false.
    if (name === 'noOwner' || name === 'noPrivileges') {
      if (o[name === 'noOwner' ? 'owner' : 'privileges'] === false) v[name] = true;
    } else if (o[name] !== undefined) v[name] = o[name];
  }
  return v as OptionValues;
}

/** The streaming strategies' options from the command line, URLs parsed. */
function streamingOptions(o: Record<string, unknown>, command: OptionCommand): Partial<StreamingOptions> {
  const v = optionValues(o, command);
  return {
    ...engineOptions(v),
    ...(v.sourceUrlFromTarget ? { sourceForTarget: parseUrl(v.sourceUrlFromTarget, 'source URL from the target') } : {}),
    ...(v.bucardoUrl ? { bucardoUrl: parseUrl(v.bucardoUrl, 'Bucardo control URL') } : {}),
  };
}

type CliOpts = CommonOpts & Record<string, unknown> & { quiet?: boolean };

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
  o: CliOpts,
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
  const v = optionValues(o, 'sync');
  const pre = await preflight(source, target, {
    strategy: 'logical',
    force: v.force ?? false,
    replicaIdentityFull: v.replicaIdentityFull ?? false,
    ...(v.workDir ? { workDir: v.workDir } : {}),
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

  const checkCmd = withEndpoints(program.command('check'))
    .description('inspect both servers and report blocking errors and warnings (changes nothing)')
    .addOption(new Option('--strategy <name>', 'strategy to check for (default: what plan picks)').choices(STRATEGIES));
  withOptions(checkCmd, 'check').action(async (o: CliOpts & { strategy?: Strategy }) => {
    const { source, target } = endpoints(o);
    const v = optionValues(o, 'check');
    const pre = await preflight(source, target, {
      strategy: o.strategy ?? 'logical',
      force: v.force ?? false,
      workDir: v.workDir ?? defaultWorkDir(),
      replicaIdentityFull: v.replicaIdentityFull ?? false,
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

  const planCmd = withEndpoints(program.command('plan'))
    .description('choose a strategy and list the steps a migration would run, with estimates (changes nothing)')
    .addOption(new Option('--strategy <name>', 'force a strategy').choices(STRATEGIES));
  withOptions(planCmd, 'plan').action(async (o: CliOpts & { strategy?: Strategy }) => {
    const { source, target } = endpoints(o);
    const v = optionValues(o, 'plan');
    const p = await plan(source, target, {
      ...(o.strategy ? { strategy: o.strategy } : {}),
      ...(v.jobs ? { jobs: v.jobs } : {}),
      force: v.force ?? false,
      replicaIdentityFull: v.replicaIdentityFull ?? false,
    });
    out(o, p, p.text);
    if (!p.ok) process.exitCode = ExitCode.checkFailed;
  });

  const migrateCmd = withEndpoints(program.command('migrate'))
    .description('the whole way: dump-restore (globals, dump, restore, vacuum, verify), or a streaming strategy: sync, then cutover')
    .addOption(new Option('--strategy <name>', 'migration strategy (default: what plan picks)').choices(STRATEGIES))
    .option('--quiet', 'no progress on stderr');
  withOptions(migrateCmd, 'migrate').action(async (o: CliOpts & { strategy?: Strategy }) => {
    const { source, target } = endpoints(o);
    const chosen = o.strategy ? { strategy: o.strategy } : await choose(source, target, o, 'migrate');
    const emit = progressPrinter(o);
    try {
      const m = await migrate(
        chosen.strategy,
        source,
        target,
        {
          dumpRestore: engineOptions(optionValues(o, 'migrate')),
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
  });

  withOptions(withEndpoints(program.command('sync')), 'sync')
    .description(
      'logical: schema, snapshot-consistent parallel copy, then stream every change; pglogical: schema, nodes, tables in batches; returns once streaming (resumes if interrupted)',
    )
    .addOption(
      new Option('--strategy <name>', 'streaming strategy (default: what plan picks)').choices(['logical', 'pglogical', 'bucardo']),
    )
    .option('--quiet', 'no progress on stderr')
    .action(async (o: CliOpts & { strategy?: StreamingStrategy }) => {
      const { source, target } = endpoints(o);
      const chosen = o.strategy ? { strategy: o.strategy } : await choose(source, target, o, 'migrate');
      const picked = chosen.strategy;
      if (picked === 'dump-restore')
        throw new PgrelocateError('usage', 'sync streams; dump-restore does not.', 'Run pgrelocate migrate --strategy dump-restore.');
      const s = await sync(
        picked,
        source,
        target,
        { ...streamingOptions(o, 'sync'), ...(chosen.preflight ? { preflight: chosen.preflight } : {}) },
        progressPrinter(o),
      );
      out(o, s.report, formatSyncOutcome(s));
    });

  withOptions(withEndpoints(program.command('copy')), 'copy')
    .description('schema, data under one snapshot, indexes, sequences, large objects, verified — once, no streaming (stop writes first)')
    .option('--quiet', 'no progress on stderr')
    .action(async (o: CliOpts) => {
      const { source, target } = endpoints(o);
      const r = await copyOnce(source, target, streamingOptions(o, 'copy'), progressPrinter(o));
      out(o, r, formatCopy(r));
    });

  withOptions(withEndpoints(program.command('cutover')), 'cutover')
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
    .action(async (o: CliOpts & { strategy?: string }) => {
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
      const r = await cutover(source, target, streamingOptions(o, 'cutover'), progressPrinter(o));
      out(o, r, formatCutover(r));
    });

  withEndpoints(program.command('verify'))
    .description('compare source and target: row counts, primary key ranges, checksums, sequences, large objects')
    // --verify, as on every other command; --mode is its earlier name, kept for scripts.
    .addOption(new Option('--verify <mode>', 'count or checksum (default checksum)').choices(['checksum', 'count']))
    .addOption(new Option('--mode <mode>').choices(['checksum', 'count']).hideHelp())
    .option('--jobs <n>', 'parallel sessions per side (default 2)', parser('jobs'))
    .action(async (o: CommonOpts & { verify?: 'checksum' | 'count'; mode?: 'checksum' | 'count'; jobs?: number }) => {
      const { source, target } = endpoints(o);
      const v = await verify(source, target, { mode: o.verify ?? o.mode ?? 'checksum', jobs: o.jobs ?? 2 });
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
