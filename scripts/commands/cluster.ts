/**
 * Every command over several databases (`--all-databases`, `--databases a,b`):
 * the checks of every database before anything changes, the target databases
 * created, the roles once, each database's run in turn, and one cutover for
 * all of them. Text output is one section per database; --json is
 * `{ databases: [{ database, … }] }` with what the whole gives beside it.
 */
import { Option, type Command } from 'commander';
import { parseUrl, withDatabase, type ConnInfo } from '../../engine/conn';
import { copyOnce } from '../../engine/copy/once';
import {
  checkDatabases,
  cutoverCluster,
  databasesOnTarget,
  eachDatabase,
  migrateDatabases,
  prepareDatabases,
  runEachDatabase,
  selectDatabases,
  syncDatabases,
  targetDatabases,
  type ClusterCheckOptions,
  type DatabaseSelection,
} from '../../engine/databases';
import { ExitCode, PgrelocateError } from '../../engine/errors';
import { plan } from '../../engine/plan';
import { formatCopy, formatCutover, formatFindings, formatReport, formatSyncOutcome, formatVerification } from '../../engine/report';
import { readRun } from '../../engine/state';
import { cleanup, status, verifyStreaming, type Strategy } from '../../engine/strategies';
import { MigrationFailed } from '../../engine/strategies/dump-restore/run';
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

/** The check options of the command line. */
function checkOptions(o: CliOpts & { strategy?: Strategy }, command: OptionCommand): ClusterCheckOptions {
  const v = optionValues(o, command);
  return {
    ...(o.strategy ? { strategy: o.strategy } : {}),
    force: v.force ?? false,
    replicaIdentityFull: v.replicaIdentityFull ?? false,
    ...(v.workDir ? { workDir: v.workDir } : {}),
    ...filterOf(v),
  };
}

export async function runClusterCheck(o: CliOpts & { strategy?: Strategy }, sel: DatabaseSelection): Promise<void> {
  const { source, target, names } = await cluster(o, sel);
  const r = await checkDatabases(source, target, names, checkOptions(o, 'check'));
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
  const have = await targetDatabases(target);
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

/** The options of one database's run: roles with the first database only. */
function roles<T extends { skipGlobals?: boolean }>(opts: T, skip: boolean): T {
  return skip ? { ...opts, skipGlobals: true } : opts;
}

export async function runClusterSync(o: CliOpts & { strategy?: Strategy }, sel: DatabaseSelection): Promise<void> {
  if (o.strategy === 'dump-restore')
    throw new PgrelocateError(
      'usage',
      'sync streams; dump-restore does not.',
      'Run pgrelocate migrate --strategy dump-restore --all-databases.',
    );
  const { source, target } = endpoints(o);
  const r = await syncDatabases(
    source,
    target,
    sel,
    { ...streamingOptions(o, 'sync'), ...(o.strategy ? { strategy: o.strategy } : {}) },
    progressPrinter(o),
  );
  out(
    o,
    { strategy: r.strategy, databases: r.databases.map((x) => ({ database: x.database, ...x.result.report })) },
    r.databases.map((x) => section(x.database, formatSyncOutcome(x.result))).join('\n'),
  );
}

export async function runClusterCopy(o: CliOpts, sel: DatabaseSelection): Promise<void> {
  const { source, target } = endpoints(o);
  const emit = progressPrinter(o);
  const r = await prepareDatabases(source, target, sel, { ...checkOptions(o, 'copy'), strategy: 'dump-restore' }, emit);
  const opts = streamingOptions(o, 'copy');
  const results = await runEachDatabase(source, target, r.names, r.created, emit, (s, t, skip) => copyOnce(s, t, roles(opts, skip), emit));
  out(
    o,
    { databases: results.map((x) => ({ database: x.database, ...x.result })) },
    results.map((x) => section(x.database, formatCopy(x.result))).join('\n'),
  );
}

/** The databases a status, verify or cleanup covers: those named, or every one of the source the target has. */
async function recorded(o: CommonOpts, sel: DatabaseSelection): Promise<{ source: ConnInfo; target: ConnInfo; names: string[] }> {
  const { source, target } = endpoints(o);
  return { source, target, names: await databasesOnTarget(source, target, sel) };
}

export async function runClusterCutover(o: CliOpts, sel: DatabaseSelection): Promise<void> {
  const { source, target } = endpoints(o);
  const r = await cutoverCluster(source, target, sel, streamingOptions(o, 'cutover'), progressPrinter(o), (cmd) => runHook(cmd, 'post'));
  out(
    o,
    r,
    [
      ...r.databases.map((d) => section(d.database, formatCutover(d.result))),
      `one cutover for ${r.databases.length} databases: write-blackout ${r.blackoutSeconds.toFixed(2)}s (first fence → last switch)`,
    ].join('\n'),
  );
}

export async function runClusterMigrate(o: CliOpts & { strategy?: Strategy }, sel: DatabaseSelection): Promise<void> {
  const { source, target } = endpoints(o);
  const v = optionValues(o, 'migrate');
  try {
    const m = await migrateDatabases(
      source,
      target,
      sel,
      {
        ...(o.strategy ? { strategy: o.strategy } : {}),
        dumpRestore: { ...engineOptions(v), ...filterOf(v) },
        streaming: streamingOptions(o, 'migrate'),
      },
      progressPrinter(o),
      (cmd) => runHook(cmd, 'post'),
    );
    if (m.strategy === 'dump-restore')
      out(
        o,
        { strategy: m.strategy, databases: m.databases.map((x) => ({ database: x.database, ...x.result })) },
        m.databases.map((x) => section(x.database, formatReport(x.result))).join('\n'),
      );
    else
      out(
        o,
        { strategy: m.strategy, sync: m.sync.map((x) => ({ database: x.database, ...x.result.report })), cutover: m.cutover },
        [
          ...m.sync.map((x) => section(x.database, formatSyncOutcome(x.result))),
          ...m.cutover.databases.map((d) => section(d.database, formatCutover(d.result))),
          `one cutover for ${m.cutover.databases.length} databases: write-blackout ${m.cutover.blackoutSeconds.toFixed(2)}s (first fence → last switch)`,
        ].join('\n'),
      );
  } catch (e) {
    if (!(e instanceof MigrationFailed)) throw e;
    out(o, e.report, formatReport(e.report));
    process.stderr.write(`pgrelocate: ${e.message}\n  fix: ${e.fix}\n`);
    process.exitCode = e.exitCode;
  }
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
