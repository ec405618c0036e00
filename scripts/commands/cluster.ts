/**
 * Every command over several databases (`--all-databases`, `--databases a,b`):
 * the checks of every database before anything changes, the target databases
 * created, the roles once, each database's run in turn, and one cutover for
 * all of them. Text output is one section per database; --json is
 * `{ databases: [{ database, … }] }` with what the whole gives beside it.
 */
import { Option, type Command } from 'commander';
import { hasErrors, runChecks, type Finding } from '../../engine/check';
import { parseUrl, withDatabase, withClient, type ConnInfo } from '../../engine/conn';
import { copyOnce } from '../../engine/copy/once';
import {
  cutoverDatabases,
  eachDatabase,
  prepareTargetDatabases,
  runEachDatabase,
  selectDatabases,
  type DatabaseSelection,
} from '../../engine/databases';
import { ExitCode, PgrelocateError } from '../../engine/errors';
import { chooseStrategy, plan } from '../../engine/plan';
import { preflight } from '../../engine/preflight';
import { formatCopy, formatCutover, formatFindings, formatReport, formatSyncOutcome, formatVerification } from '../../engine/report';
import { readRun } from '../../engine/state';
import { cleanup, status, streamingHooks, sync, verifyStreaming, type Strategy } from '../../engine/strategies';
import { MigrationFailed, migrate as dumpRestore } from '../../engine/strategies/dump-restore/run';
import { runHook } from '../../engine/streaming/cutover';
import type { TableFilter } from '../../engine/filter';
import { verify } from '../../engine/verify';
import { endpoints, filterOf, optionValues, out, progressPrinter, streamingOptions, type CliOpts, type CommonOpts } from './shared';
import { engineOptions, type Command as OptionCommand } from '../../engine/options';

/** The databases the command line names, or null for a one-database command. */
export function clusterSelection(o: Record<string, unknown>): DatabaseSelection | null {
  const all = o['allDatabases'] === true;
  const names = o['databases'] as string[] | undefined;
  if (all && names) throw new PgrelocateError('usage', '--all-databases and --databases name the databases twice.', 'Pass one of them.');
  return all ? { all: true } : names ? { names } : null;
}

/** --all-databases and --databases for the commands outside the options table (status, verify, cleanup). */
export function withDatabaseFlags(cmd: Command): Command {
  return cmd
    .option('--all-databases', 'every database a whole-cluster run moved')
    .addOption(new Option('--databases <names>', 'these databases, comma-separated').argParser((v) => v.split(',').map((x) => x.trim())));
}

const section = (name: string, text: string): string => `== database ${name} ==\n${text}`;

/** The endpoints for the whole cluster: the source's databases chosen, the target's server. */
async function cluster(o: CommonOpts, sel: DatabaseSelection): Promise<{ source: ConnInfo; target: ConnInfo; names: string[] }> {
  const { source, target } = endpoints(o);
  return { source, target, names: await selectDatabases(source, sel) };
}

/** The target databases that exist already. */
async function existingOnTarget(target: ConnInfo): Promise<Set<string>> {
  return withClient(
    target,
    'target',
    async (c) => new Set((await c.query<{ n: string }>('SELECT datname AS n FROM pg_database')).rows.map((r) => r.n)),
  );
}

interface ClusterCheck {
  readonly ok: boolean;
  readonly strategy: Strategy;
  readonly databases: { database: string; strategy: Strategy; reason: string; findings: Finding[]; created: boolean }[];
}

/**
 * Every database's checks: a database the target lacks is checked against the
 * target's server (its own database), less the emptiness that one says nothing
 * of. The strategy is the one asked for, or the one every database allows.
 */
async function checkAll(
  o: CliOpts,
  command: OptionCommand,
  source: ConnInfo,
  target: ConnInfo,
  names: readonly string[],
  asked?: Strategy,
): Promise<ClusterCheck> {
  const v = optionValues(o, command);
  const have = await existingOnTarget(target);
  const out: ClusterCheck['databases'] = [];
  for (const name of names) {
    const created = !have.has(name);
    const pre = await preflight(withDatabase(source, name), created ? target : withDatabase(target, name), {
      strategy: asked ?? 'logical',
      force: v.force ?? false,
      replicaIdentityFull: v.replicaIdentityFull ?? false,
      ...(v.workDir ? { workDir: v.workDir } : {}),
      ...filterOf(v),
    });
    const chosen = chooseStrategy(asked, pre.facts);
    const findings = runChecks({ ...pre.facts, strategy: chosen.strategy }).filter((f) => !(created && f.code === 'target-not-empty'));
    if (created)
      findings.push({
        level: 'info',
        code: 'database-created',
        message: `The target has no database ${name}: it is created with the source's encoding and locale, then moved.`,
        fix: '',
      });
    if (chosen.streamingBlockers && !asked) findings.push(...chosen.streamingBlockers.map((b) => ({ ...b, level: 'error' as const })));
    out.push({ database: name, strategy: chosen.strategy, reason: chosen.reason, findings, created });
  }
  // One strategy for all: the least capable any database allows (a database that cannot replicate decides).
  const order: Strategy[] = ['logical', 'pglogical', 'bucardo', 'dump-restore'];
  const strategy = asked ?? out.map((d) => d.strategy).sort((a, b) => order.indexOf(b) - order.indexOf(a))[0]!;
  return { ok: out.every((d) => !hasErrors(d.findings)), strategy, databases: out };
}

export async function runClusterCheck(o: CliOpts & { strategy?: Strategy }, sel: DatabaseSelection): Promise<void> {
  const { source, target, names } = await cluster(o, sel);
  const r = await checkAll(o, 'check', source, target, names, o.strategy);
  out(
    o,
    r,
    [
      ...r.databases.map((d) => section(d.database, `strategy: ${d.strategy} (${d.reason})\n${formatFindings(d.findings)}`)),
      `strategy for all ${names.length} databases: ${r.strategy}`,
      r.ok ? 'check passed' : 'check FAILED',
    ].join('\n'),
  );
  if (!r.ok) process.exitCode = ExitCode.checkFailed;
}

export async function runClusterPlan(o: CliOpts & { strategy?: Strategy }, sel: DatabaseSelection): Promise<void> {
  const { source, target, names } = await cluster(o, sel);
  const have = await existingOnTarget(target);
  const v = optionValues(o, 'plan');
  const plans = await eachDatabase(
    source,
    target,
    names,
    () => undefined,
    (s, t) =>
      plan(s, have.has(t.database) ? t : withDatabase(t, target.database), {
        ...(o.strategy ? { strategy: o.strategy } : {}),
        ...(v.jobs ? { jobs: v.jobs } : {}),
        force: v.force ?? false,
        replicaIdentityFull: v.replicaIdentityFull ?? false,
        ...filterOf(v),
      }),
  );
  const ok = plans.every((p) => p.result.ok);
  out(
    o,
    { ok, databases: plans.map((p) => ({ database: p.database, ...p.result })) },
    plans.map((p) => section(p.database, p.result.text)).join('\n'),
  );
  if (!ok) process.exitCode = ExitCode.checkFailed;
}

/** Checks passed for every database, then the target databases made: what sync, copy and migrate start with. */
async function ready(
  o: CliOpts & { strategy?: Strategy },
  command: OptionCommand,
  sel: DatabaseSelection,
): Promise<{ source: ConnInfo; target: ConnInfo; names: string[]; strategy: Strategy; created: string[] }> {
  const { source, target, names } = await cluster(o, sel);
  const checked = await checkAll(o, command, source, target, names, o.strategy);
  if (!checked.ok) {
    const errors = checked.databases.flatMap((d) =>
      d.findings.filter((f) => f.level === 'error').map((f) => `${d.database}: ${f.message}\n    fix: ${f.fix}`),
    );
    throw new PgrelocateError(
      'check-failed',
      `Preflight checks failed; nothing was changed:\n  ${errors.join('\n  ')}`,
      'Fix the errors above, then run again.',
    );
  }
  const emit = progressPrinter(o);
  emit({ type: 'log', level: 'info', message: `databases: ${names.join(', ')}; strategy ${checked.strategy}` });
  const created = await prepareTargetDatabases(source, target, names, emit);
  return { source, target, names, strategy: checked.strategy, created };
}

/** The options of one database's run: roles with the first database only. */
function roles<T extends { skipGlobals?: boolean }>(opts: T, skip: boolean): T {
  return skip ? { ...opts, skipGlobals: true } : opts;
}

export async function runClusterSync(o: CliOpts & { strategy?: Strategy }, sel: DatabaseSelection): Promise<void> {
  const r = await ready(o, 'sync', sel);
  if (r.strategy === 'dump-restore')
    throw new PgrelocateError(
      'usage',
      'sync streams; dump-restore does not.',
      'Run pgrelocate migrate --strategy dump-restore --all-databases.',
    );
  const emit = progressPrinter(o);
  const opts = streamingOptions(o, 'sync');
  const results = await runEachDatabase(r.source, r.target, r.names, r.created, emit, (s, t, skip) =>
    sync(r.strategy as Exclude<Strategy, 'dump-restore'>, s, t, roles(opts, skip), emit),
  );
  out(
    o,
    { strategy: r.strategy, databases: results.map((x) => ({ database: x.database, ...x.result.report })) },
    results.map((x) => section(x.database, formatSyncOutcome(x.result))).join('\n'),
  );
}

export async function runClusterCopy(o: CliOpts, sel: DatabaseSelection): Promise<void> {
  const r = await ready(o, 'copy', sel);
  const emit = progressPrinter(o);
  const opts = streamingOptions(o, 'copy');
  const results = await runEachDatabase(r.source, r.target, r.names, r.created, emit, (s, t, skip) =>
    copyOnce(s, t, roles(opts, skip), emit),
  );
  out(
    o,
    { databases: results.map((x) => ({ database: x.database, ...x.result })) },
    results.map((x) => section(x.database, formatCopy(x.result))).join('\n'),
  );
}

/** The databases a cutover, status, verify or cleanup covers: those named, or every one a run is recorded in. */
async function recorded(o: CommonOpts, sel: DatabaseSelection): Promise<{ source: ConnInfo; target: ConnInfo; names: string[] }> {
  const { source, target, names } = await cluster(o, sel);
  const have = await existingOnTarget(target);
  const missing = names.filter((n) => !have.has(n));
  if (missing.length > 0 && 'names' in sel)
    throw new PgrelocateError(
      'no-run',
      `The target has no database ${missing.join(', ')}; nothing was changed.`,
      'Run pgrelocate sync with the same databases first.',
    );
  return { source, target, names: names.filter((n) => have.has(n)) };
}

export async function runClusterCutover(o: CliOpts, sel: DatabaseSelection): Promise<void> {
  const { source, target, names } = await recorded(o, sel);
  const r = await cutoverDatabases(source, target, names, streamingOptions(o, 'cutover'), progressPrinter(o), streamingHooks, (cmd) =>
    runHook(cmd, 'post'),
  );
  out(
    o,
    r,
    [
      ...r.databases.map((d) => section(d.database, formatCutover(d.result))),
      `one cutover for ${names.length} databases: write-blackout ${r.blackoutSeconds.toFixed(2)}s (first fence → last switch)`,
    ].join('\n'),
  );
}

export async function runClusterMigrate(o: CliOpts & { strategy?: Strategy }, sel: DatabaseSelection): Promise<void> {
  const r = await ready(o, 'migrate', sel);
  const emit = progressPrinter(o);
  if (r.strategy === 'dump-restore') {
    const v = optionValues(o, 'migrate');
    const base = { ...engineOptions(v), ...filterOf(v), strategy: 'dump-restore' as const };
    try {
      const reports = await runEachDatabase(r.source, r.target, r.names, r.created, emit, (s, t, skip) =>
        dumpRestore(s, t, roles(base, skip), emit),
      );
      out(
        o,
        { strategy: r.strategy, databases: reports.map((x) => ({ database: x.database, ...x.result })) },
        reports.map((x) => section(x.database, formatReport(x.result))).join('\n'),
      );
    } catch (e) {
      if (!(e instanceof MigrationFailed)) throw e;
      out(o, e.report, formatReport(e.report));
      process.stderr.write(`pgrelocate: ${e.message}\n  fix: ${e.fix}\n`);
      process.exitCode = e.exitCode;
    }
    return;
  }
  const opts = streamingOptions(o, 'migrate');
  const synced = await runEachDatabase(r.source, r.target, r.names, r.created, emit, (s, t, skip) =>
    sync(r.strategy as Exclude<Strategy, 'dump-restore'>, s, t, roles(opts, skip), emit),
  );
  const c = await cutoverDatabases(r.source, r.target, r.names, opts, emit, streamingHooks, (cmd) => runHook(cmd, 'post'));
  out(
    o,
    { strategy: r.strategy, sync: synced.map((x) => ({ database: x.database, ...x.result.report })), cutover: c },
    [
      ...synced.map((x) => section(x.database, formatSyncOutcome(x.result))),
      ...c.databases.map((d) => section(d.database, formatCutover(d.result))),
      `one cutover for ${r.names.length} databases: write-blackout ${c.blackoutSeconds.toFixed(2)}s (first fence → last switch)`,
    ].join('\n'),
  );
}

export async function runClusterStatus(o: CommonOpts, sel: DatabaseSelection): Promise<void> {
  if (!o.target) throw new PgrelocateError('usage', 'No target given.', 'Pass --target postgresql://… or set PGRELOCATE_TARGET_URL.');
  if (!o.source)
    throw new PgrelocateError(
      'usage',
      'status --all-databases needs the source, to list its databases.',
      'Pass --source or set PGRELOCATE_SOURCE_URL.',
    );
  const { source, target, names } = await recorded(o, sel);
  const rows: Record<string, unknown>[] = [];
  const text: string[] = [];
  let failed = false;
  for (const name of names) {
    const st = await status(withDatabase(source, name), withDatabase(target, name));
    const run = st.run ?? (await readRun(withDatabase(target, name)));
    failed ||= run?.status === 'failed';
    rows.push({
      database: name,
      run: run ? { id: run.id, strategy: run.strategy, status: run.status } : null,
      phase: st.phase,
      lag: st.lag,
      sourceFence: st.sourceFence,
      schemaChanges: st.schemaChanges,
    });
    text.push(
      `${name.padEnd(20)} ${run ? `${run.strategy} ${run.status}${st.phase ? ` (phase ${st.phase})` : ''}` : 'no run'}${st.lag ? `, lag ${st.lag.bytes} bytes` : ''}${st.sourceFence ? `; source ${st.sourceFence.text}` : ''}${st.schemaChanges?.length ? `; SCHEMA CHANGED: ${st.schemaChanges.join('; ')}` : ''}`,
    );
  }
  out(o, { databases: rows }, text.join('\n'));
  if (failed) process.exitCode = ExitCode.migrationFailed;
}

export async function runClusterVerify(
  o: CommonOpts & { quiet?: boolean; verbose?: boolean; mode?: 'checksum' | 'count'; verify?: 'checksum' | 'count'; jobs?: number },
  sel: DatabaseSelection,
): Promise<void> {
  const { source, target, names } = await recorded(o, sel);
  const mode = o.verify ?? o.mode ?? 'checksum';
  const jobs = o.jobs ?? 2;
  const results = await eachDatabase(source, target, names, progressPrinter(o), async (s, t) => {
    const pinned = await verifyStreaming(s, t, { mode, jobs }, progressPrinter(o));
    if (pinned) return pinned;
    const filter = ((await readRun(t))?.meta as { filter?: TableFilter } | null)?.filter;
    return verify(s, t, { mode, jobs, ...(filter ? { filter } : {}) });
  });
  const ok = results.every((r) => r.result.ok);
  out(
    o,
    { ok, databases: results.map((r) => ({ database: r.database, ...r.result })) },
    results.map((r) => section(r.database, formatVerification(r.result))).join('\n'),
  );
  if (!ok) process.exitCode = ExitCode.verifyFailed;
}

export async function runClusterCleanup(o: CommonOpts & { unfence?: boolean; bucardoUrl?: string }, sel: DatabaseSelection): Promise<void> {
  const { source, target, names } = await recorded(o, sel);
  const results = await eachDatabase(
    source,
    target,
    names,
    () => undefined,
    (s, t) =>
      cleanup(s, t, {
        unfence: o.unfence ?? false,
        ...(o.bucardoUrl ? { bucardoUrl: parseUrl(o.bucardoUrl, 'Bucardo control URL') } : {}),
      }),
  );
  out(
    o,
    { databases: results.map((r) => ({ database: r.database, removed: r.result })) },
    results.map((r) => section(r.database, r.result.length ? `removed:\n  ${r.result.join('\n  ')}` : 'nothing to remove')).join('\n'),
  );
}
