/**
 * The local rehearsal (`npm start`): a PostgreSQL 12 source and a 17 target
 * from the npm-packaged binaries, the sample application database, and a
 * migration while the write load keeps running on the source. With the
 * default `logical` strategy: sync, a few seconds of streaming, cutover, the
 * application switched to the target, and the ledger checked there — every
 * committed write present. `--strategy pglogical` does the same through
 * pglogical on Debian's PostgreSQL 15 (the only server here that carries the
 * extension) on both sides; `--strategy bucardo` drives a real Bucardo, its
 * control database on a third, local Debian 15 server with PL/Perl;
 * `--strategy dump-restore` rehearses the offline way.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { type Strategy, type StreamingStrategy, STRATEGIES } from '../engine/strategies/names';
import { withClient } from '../engine/conn';
import { ExitCode, isPgrelocateError } from '../engine/errors';
import { startServer, stopAllServers, type LocalServer } from '../engine/local/cluster';
import { MigrationFailed, type MigrationReport } from '../engine/strategies/dump-restore/run';
import { cutover, migrate, sync, type CutoverReport, type SyncOutcome } from '../engine/strategies';
import { progressView } from './progress-view';
import { formatCutover, formatReport, formatSyncOutcome } from '../engine/report';
import { formatBytes, formatDuration, parseSize } from '../engine/units';
import { APP_ROLE, dropGeneratedColumns, loadSample, loadSideDatabases } from './sample-db';
import { cutoverCluster, migrateDatabases, syncDatabases } from '../engine/databases';
import { WriteLoad, type LedgerCheck, type LoadSummary } from './write-load';

interface RehearseOptions {
  from: number;
  to: number;
  size: number;
  jobs?: number;
  strategy: Strategy;
  rate: number;
  streamSeconds: number;
  verify: 'count' | 'checksum' | 'none';
  json?: boolean;
  batchSize: number;
  batchPause: number;
  bucardoParallelCopy?: boolean;
  /** Two more databases beside the sample, every one moved in one run with one cutover. */
  allDatabases?: boolean;
}

interface LogicalRehearsal {
  readonly strategy: StreamingStrategy;
  readonly sampleBytes: number;
  readonly sync: SyncOutcome;
  readonly cutover: CutoverReport;
  readonly load: LoadSummary;
  /** From the application's side: last commit on the source to first commit on the target. */
  readonly appWriteGapSeconds: number | null;
  readonly ledger: LedgerCheck;
  /** --all-databases: every database's own blackout and verification, and the one blackout of them all. */
  readonly others: {
    readonly databases: readonly { readonly database: string; readonly blackoutSeconds: number; readonly verified: boolean | null }[];
    readonly blackoutSeconds: number;
  } | null;
  readonly ok: boolean;
}

const log = (line: string): void => void process.stderr.write(line + '\n');

/** pglogical needs its library preloaded on both sides, and workers for its supervisor, managers and apply. */
const PGLOGICAL_SETTINGS = { shared_preload_libraries: 'pglogical', max_worker_processes: 16 };

async function servers(o: RehearseOptions): Promise<[LocalServer, LocalServer]> {
  const t0 = Date.now();
  const settings = o.strategy === 'pglogical' ? PGLOGICAL_SETTINGS : {};
  const [source, target] = await Promise.all([
    startServer({ major: o.from, name: 'source', settings }),
    startServer({ major: o.to, name: 'target', settings }),
  ]);
  log(
    `servers: source PostgreSQL ${o.from} on 127.0.0.1:${source.port}, target PostgreSQL ${o.to} on 127.0.0.1:${target.port} (${formatDuration((Date.now() - t0) / 1000)})`,
  );
  // The application database is "shop" on both sides, as it would be on real servers; a whole-cluster run creates the target's itself.
  for (const s of o.allDatabases ? [source] : [source, target])
    await withClient(s.conn(), 'local server', (c) => c.query('CREATE DATABASE shop'));
  return [source, target];
}

/** Bucardo's control database lives on its own local server: Debian's 15, which has PL/Perl. */
async function bucardoServer(): Promise<LocalServer> {
  const s = await startServer({ major: 15, name: 'bucardo' });
  log(`Bucardo control server: PostgreSQL 15 on 127.0.0.1:${s.port}`);
  return s;
}

async function rehearseLogical(o: RehearseOptions, strategy: StreamingStrategy): Promise<LogicalRehearsal> {
  const [source, target] = await servers(o);
  const sample = await loadSample(source.conn('shop'), { sizeBytes: o.size, log });
  log(`sample: ${formatBytes(sample.bytes)} loaded in ${formatDuration(sample.seconds)}`);
  const pgl = o.strategy === 'pglogical';
  if (pgl) {
    await dropGeneratedColumns(source.conn('shop'));
    log('sample: generated column app.line_items.amount made a plain column (a 9.x schema has none; pglogical 2 cannot replicate them)');
  }
  if (o.allDatabases) {
    await loadSideDatabases(source.conn());
    log('side databases: crm (pgcrypto) and metrics (owned by reporter, with its own work_mem there)');
  }
  const load = new WriteLoad(source.conn('shop'), { rate: o.rate, workers: 4, user: { name: APP_ROLE, password: sample.appPassword } });
  await load.start();
  log(`write load: ${o.rate} transactions/s on the source as ${APP_ROLE}, with a ledger`);
  const emit = progressView();
  // The sample has a key-less table (schema_migrations): let pgrelocate give it REPLICA IDENTITY FULL.
  const options = { replicaIdentityFull: true, verify: o.verify, ...(o.jobs ? { jobs: o.jobs } : {}) };
  try {
    const syncOptions = {
      ...options,
      batchSize: o.batchSize,
      batchPause: o.batchPause,
      bucardoParallelCopy: o.bucardoParallelCopy ?? false,
      ...(o.strategy === 'bucardo' ? { bucardoUrl: (await bucardoServer()).conn() } : {}),
    };
    let s: SyncOutcome;
    let c: CutoverReport;
    let others: LogicalRehearsal['others'] = null;
    if (o.allDatabases) {
      // Every database of the source, as `sync --all-databases` and `cutover --all-databases` move them.
      const synced = await syncDatabases(source.conn(), target.conn(), { all: true }, { ...syncOptions, strategy }, emit);
      log(`streaming ${synced.databases.length} databases for ${o.streamSeconds}s under load …`);
      await new Promise((r) => setTimeout(r, o.streamSeconds * 1000));
      const all = await cutoverCluster(source.conn(), target.conn(), { all: true }, options, emit, async () => undefined);
      s = synced.databases.find((x) => x.database === 'shop')!.result;
      c = all.databases.find((x) => x.database === 'shop')!.result;
      others = {
        databases: all.databases.map((d) => ({
          database: d.database,
          blackoutSeconds: d.result.blackoutSeconds,
          verified: d.result.verification?.ok ?? null,
        })),
        blackoutSeconds: all.blackoutSeconds,
      };
    } else {
      s = await sync(strategy, source.conn('shop'), target.conn('shop'), syncOptions, emit);
      log(`streaming for ${o.streamSeconds}s under load …`);
      await new Promise((r) => setTimeout(r, o.streamSeconds * 1000));
      c = await cutover(source.conn('shop'), target.conn('shop'), options, emit);
    }
    // The deploy that points the application at the new server.
    load.switchTo(target.conn('shop'));
    await new Promise((r) => setTimeout(r, 2000));
    const summary = await load.stop();
    const ledger = await load.ledger.check(target.conn('shop'));
    return {
      strategy,
      sampleBytes: sample.bytes,
      sync: s,
      cutover: c,
      load: summary,
      appWriteGapSeconds: load.writeGap(),
      ledger,
      others,
      ok: ledger.ok && (others?.databases.every((d) => d.verified !== false) ?? true),
    };
  } finally {
    await load.stop().catch(() => undefined);
  }
}

function formatLogical(r: LogicalRehearsal): string {
  const sync = r.sync;
  const copy = sync.strategy === 'logical' ? sync.report.copy : null;
  const tables = sync.strategy === 'pglogical' ? sync.report.steps.find((x) => x.name === 'tables') : undefined;
  const catchUp = sync.strategy === 'logical' ? sync.report : null;
  const dataAndIndexes = (catchUp?.steps ?? [])
    .filter((x) => x.name === 'copy' || x.name === 'schema-post-data')
    .reduce((t, x) => t + x.seconds, 0);
  return [
    formatSyncOutcome(sync),
    formatCutover(r.cutover),
    'rehearsal',
    `  sample            ${formatBytes(r.sampleBytes)}`,
    copy
      ? `  initial copy      ${formatDuration(dataAndIndexes)} for data and indexes (${formatBytes(copy.bytes)} of rows in ${formatDuration(copy.seconds)}, ${formatBytes(copy.bytes / Math.max(copy.seconds, 0.001))}/s, index builds sharing the --jobs slots)`
      : '',
    sync.strategy === 'bucardo' && sync.report.copySeconds !== null
      ? `  initial copy      ${formatDuration(sync.report.copySeconds)} (${sync.report.steps.some((x) => x.name === 'onetimecopy') ? "Bucardo's onetimecopy" : "pgrelocate's parallel copy and index builds; Bucardo carries the changes"})`
      : tables
        ? `  initial copy      ${formatDuration(tables.seconds)} (pglogical table syncs, in batches)`
        : '',
    catchUp
      ? `  catch-up          ${formatDuration(catchUp.catchUpSeconds ?? 0)} to apply ${formatBytes(catchUp.backlogBytes ?? 0)} of WAL written during the copy`
      : '',
    `  write-blackout    ${formatDuration(r.cutover.blackoutSeconds)} measured by pgrelocate; ${r.appWriteGapSeconds === null ? 'n/a' : formatDuration(r.appWriteGapSeconds)} seen by the application (last commit on the source → first on the target)`,
    `  write load        ${r.load.committed} commits, ${r.load.failed} refused by the old server at or after the switch (they waited on the fence; through PgBouncer they would run on the new one), ${r.load.uncertain} cut off mid-statement (${r.load.perSecond.toFixed(0)}/s)`,
    r.others
      ? `  all databases     ${r.others.databases.map((d) => `${d.database} (${d.verified === false ? 'verification FAILED' : 'verified'})`).join(', ')}: one cutover, write-blackout ${formatDuration(r.others.blackoutSeconds)} from the first fence to the last switch`
      : '',
    `  ledger            ${r.ledger.ok ? 'OK' : 'FAILED'} — ${r.ledger.checked} written keys checked on the target, ${r.ledger.missing.length} missing, ${r.ledger.wrong.length} stale, ${r.ledger.resurrected.length} resurrected`,
  ]
    .filter(Boolean)
    .join('\n');
}

async function rehearseDumpRestore(o: RehearseOptions): Promise<MigrationReport> {
  const [source, target] = await servers(o);
  const sample = await loadSample(source.conn('shop'), { sizeBytes: o.size, log });
  log(`sample: ${formatBytes(sample.bytes)} loaded in ${formatDuration(sample.seconds)}`);
  if (o.allDatabases) {
    await loadSideDatabases(source.conn());
    const m = await migrateDatabases(
      source.conn(),
      target.conn(),
      { all: true },
      { strategy: 'dump-restore', dumpRestore: o.jobs ? { jobs: o.jobs } : {} },
      progressView(),
      async () => undefined,
    );
    if (m.strategy !== 'dump-restore') throw new Error('a dump-restore rehearsal ran another strategy');
    const reports = m.databases;
    for (const r of reports.filter((x) => x.database !== 'shop'))
      log(`database ${r.database}: verification ${r.result.verification?.ok ? 'OK' : 'FAILED'}`);
    return reports.find((x) => x.database === 'shop')!.result;
  }
  const m = await migrate(
    'dump-restore',
    source.conn('shop'),
    target.conn('shop'),
    { dumpRestore: o.jobs ? { jobs: o.jobs } : {} },
    progressView(),
  );
  return m.report;
}

async function main(): Promise<number> {
  const num =
    (what: string) =>
    (v: string): number => {
      const n = Number(v);
      if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(what);
      return n;
    };
  const cmd = new Command('rehearse')
    .description('Local rehearsal: start a source and a target server, load the sample database, migrate under write load, verify, report.')
    .option('--from <major>', 'source PostgreSQL major', num('a major version such as 12'), 12)
    .option('--to <major>', 'target PostgreSQL major', num('a major version such as 17'), 17)
    .addOption(new Option('--size <size>', 'sample database size, e.g. 300MB or 2GB').default('300MB').env('PGRELOCATE_SAMPLE_SIZE'))
    .option('--jobs <n>', 'parallel jobs', num('a number of jobs'))
    .addOption(new Option('--strategy <name>', 'migration strategy').choices([...STRATEGIES]).default('logical'))
    .option('--batch-size <n>', 'pglogical: tables per batch', num('a number of tables'), 4)
    .option('--batch-pause <s>', 'pglogical: pause between batches', num('seconds'), 1)
    .option('--bucardo-parallel-copy', "bucardo: pgrelocate's parallel copy first, Bucardo for the changes only")
    .option('--rate <tps>', 'write load, transactions per second', num('transactions per second'), 200)
    .option('--stream-seconds <s>', 'how long to stream under load before the cutover', num('seconds'), 5)
    .addOption(
      new Option('--verify <mode>', 'verification inside the cutover window').choices(['count', 'checksum', 'none']).default('count'),
    )
    .option(
      '--all-databases',
      'two more databases beside the sample (one with its own extension, one with a role setting in it), every one moved in one run with one cutover',
    )
    .option('--json', 'print the report as JSON')
    .parse();
  const raw = cmd.opts<Omit<RehearseOptions, 'size'> & { size: string }>();
  const o: RehearseOptions = { ...raw, size: parseSize(raw.size) };
  if (o.strategy === 'pglogical') {
    // Only Debian's 15 carries pglogical here (postgresql-15-pglogical).
    const given = (flag: string): boolean => cmd.getOptionValueSource(flag) === 'cli';
    if ((given('from') && o.from !== 15) || (given('to') && o.to !== 15)) {
      process.stderr.write('pgrelocate: the pglogical rehearsal runs 15 → 15 (the only server here with postgresql-15-pglogical)\n');
      return ExitCode.usage;
    }
    o.from = 15;
    o.to = 15;
  }
  const print = (json: unknown, text: string): void => void process.stdout.write((o.json ? JSON.stringify(json, null, 2) : text) + '\n');
  try {
    if (o.strategy !== 'dump-restore') {
      const r = await rehearseLogical(o, o.strategy);
      print(r, formatLogical(r));
      return r.ok ? ExitCode.ok : ExitCode.verifyFailed;
    }
    const report = await rehearseDumpRestore(o);
    print(report, formatReport(report));
    return ExitCode.ok;
  } catch (e) {
    if (e instanceof MigrationFailed) print(e.report, formatReport(e.report));
    if (isPgrelocateError(e)) {
      process.stderr.write(`pgrelocate: ${e.message}\n  fix: ${e.fix}\n`);
      return e.exitCode;
    }
    process.stderr.write(`rehearsal failed: ${(e as Error).stack ?? String(e)}\n`);
    return ExitCode.failed;
  } finally {
    await stopAllServers();
  }
}

void main().then((code) => {
  process.exitCode = code;
});
