/** What the commands share: endpoints, output, progress, the options table as commander options, the strategy choice. */
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { runChecks } from '../../engine/check';
import { type Strategy } from '../../engine/strategies/names';
import { parseUrl, type ConnInfo } from '../../engine/conn';
import { PgrelocateError } from '../../engine/errors';
import { chooseStrategy, onlyDumpRestoreText } from '../../engine/plan';
import { previousRun, type StreamingOptions } from '../../engine/streaming/options';
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
} from '../../engine/options';
import { preflight, type Preflight } from '../../engine/preflight';
import { checkFilter, isFiltered, mergeFilters, NO_FILTER, readFilterFile, type TableFilter } from '../../engine/filter';
import { progressView } from '../progress-view';
import { formatFindings } from '../../engine/report';
import type { RunEvent } from '../../engine/runner';

export interface CommonOpts {
  source?: string;
  target?: string;
  json?: boolean;
}

export function endpoints(o: CommonOpts): { source: ConnInfo; target: ConnInfo } {
  if (!o.source) throw new PgrelocateError('usage', 'No source given.', 'Pass --source postgresql://… or set PGRELOCATE_SOURCE_URL.');
  if (!o.target) throw new PgrelocateError('usage', 'No target given.', 'Pass --target postgresql://… or set PGRELOCATE_TARGET_URL.');
  return { source: parseUrl(o.source, 'source URL'), target: parseUrl(o.target, 'target URL') };
}

export function withEndpoints(cmd: Command): Command {
  return cmd
    .addOption(new Option('--source <url>', 'source database URL').env('PGRELOCATE_SOURCE_URL'))
    .addOption(new Option('--target <url>', 'target database URL').env('PGRELOCATE_TARGET_URL'))
    .option('--json', 'print machine-readable JSON on stdout');
}

export function out(o: CommonOpts, json: unknown, text: string): void {
  process.stdout.write((o.json ? JSON.stringify(json, null, 2) : text) + '\n');
}

/** Progress goes to stderr so --json stdout stays clean: a bar on a terminal, lines elsewhere. */
export function progressPrinter(o: CommonOpts & { quiet?: boolean; verbose?: boolean }): (e: RunEvent) => void {
  const view = progressView({ verbose: o.verbose === true });
  return (e) => {
    if (o.quiet) return;
    if (o.json && e.type === 'progress') return;
    view(e);
  };
}

/** Commander's parser for a table option: the value checked, or the flag named with what it must be. */
export function parser(name: OptionName) {
  return (v: string): unknown => {
    try {
      return readOption(name, v);
    } catch (e) {
      throw new InvalidArgumentError(`${flagOf(name)} ${(e as Error).message}`);
    }
  };
}

/** The options table's options of `command` (engine/options.ts), as commander options. */
export function withOptions(cmd: Command, command: OptionCommand): Command {
  for (const name of optionsOf(command)) {
    const spec: OptionSpec = OPTIONS[name];
    if (!spec.flag) continue;
    const shown = spec.default !== undefined ? ` (default ${String(spec.default)})` : '';
    const o = new Option(spec.flag, spec.help + shown);
    if (spec.choices) o.choices(spec.choices);
    else if (spec.repeat)
      o.argParser((v: string, prev: unknown) => [...((prev as string[] | undefined) ?? []), ...(parser(name)(v) as string[])]);
    else if (spec.flag.includes('<')) o.argParser(parser(name));
    if (spec.env) o.env(spec.env);
    cmd.addOption(o);
  }
  return cmd;
}

/** What commander collected for the table's options of `command`, checked. */
export function optionValues(o: Record<string, unknown>, command: OptionCommand): OptionValues {
  const v: Record<string, unknown> = {};
  for (const name of optionsOf(command)) {
    // Commander keeps a negated switch (--no-owner) as its positive name set to false (owner = false).
    const negated = /^--no-([a-z-]+)$/.exec(flagOf(name) ?? '');
    if (negated) {
      if (o[negated[1]!.replace(/-(\w)/g, (_m, c: string) => c.toUpperCase())] === false) v[name] = true;
    } else if (o[name] !== undefined) v[name] = o[name];
  }
  return v as OptionValues;
}

/** The filter of the command line: its patterns, with --filter-file's. */
export function filterOf(v: OptionValues): { filter?: TableFilter } {
  const flags = engineOptions(v).filter ?? NO_FILTER;
  const f = v.filterFile ? mergeFilters(flags, readFilterFile(v.filterFile)) : flags;
  return isFiltered(f) ? { filter: checkFilter(f) } : {};
}

/** The streaming strategies' options from the command line, URLs parsed. */
export function streamingOptions(o: Record<string, unknown>, command: OptionCommand): Partial<StreamingOptions> {
  const v = optionValues(o, command);
  return {
    ...engineOptions(v),
    ...filterOf(v),
    ...(v.sourceUrlFromTarget ? { sourceForTarget: parseUrl(v.sourceUrlFromTarget, 'source URL from the target') } : {}),
    ...(v.bucardoUrl ? { bucardoUrl: parseUrl(v.bucardoUrl, 'Bucardo control URL') } : {}),
    ...pgbouncerOption(v),
  };
}

/** --pgbouncer-admin with --pgbouncer-ini (one without the other is refused before anything runs). */
function pgbouncerOption(v: OptionValues): Pick<StreamingOptions, 'pgbouncer'> {
  if (!v.pgbouncerAdmin && !v.pgbouncerIni) return {};
  if (!v.pgbouncerAdmin || !v.pgbouncerIni)
    throw new PgrelocateError(
      'usage',
      `${v.pgbouncerAdmin ? '--pgbouncer-ini' : '--pgbouncer-admin'} is missing: a cutover through PgBouncer needs its admin console and the configuration file it rewrites.`,
      'Pass both --pgbouncer-admin postgresql://admin@host:6432/pgbouncer (or PGRELOCATE_PGBOUNCER_ADMIN_URL) and --pgbouncer-ini /etc/pgbouncer/pgbouncer.ini.',
    );
  return {
    pgbouncer: {
      admin: parseUrl(v.pgbouncerAdmin, 'PgBouncer admin URL'),
      ini: path.resolve(v.pgbouncerIni),
      ...(v.pgbouncerDatabase ? { database: v.pgbouncerDatabase } : {}),
    },
  };
}

export type CliOpts = CommonOpts & Record<string, unknown> & { quiet?: boolean; verbose?: boolean };

/** What a command that runs steps prints on stderr: progress, or nothing, or one line per object too. */
export function withProgress(cmd: Command): Command {
  return cmd
    .option('--quiet', 'no progress on stderr')
    .option('--verbose', 'one line per object as well: each index built, each expected restore error');
}

/**
 * The strategy for a command run without --strategy: the one of a run already
 * recorded on the target (a resumed sync, a cutover), else what plan picks.
 * When only dump-restore is possible it refuses, naming each reason and its
 * fix, unless the command may fall back to it (never: a full-downtime run
 * must be asked for).
 */
export async function choose(
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
    ...filterOf(v),
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
