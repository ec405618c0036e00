/**
 * The local rehearsal (`npm start`): a PostgreSQL 12 source and a 17 target
 * from the npm-packaged binaries, the sample application database, and a
 * migration while the write load keeps running on the source. With the
 * default `logical` strategy: sync, a few seconds of streaming, cutover, the
 * application switched to the target, and the ledger checked there — every
 * committed write present. `--strategy dump-restore` rehearses the offline way.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { type Strategy, STRATEGIES } from '../engine/check';
import { withClient } from '../engine/conn';
import { ExitCode, isPgferryError } from '../engine/errors';
import { startServer, stopAllServers, type LocalServer } from '../engine/local/cluster';
import { cutover, sync, type CutoverReport, type SyncReport } from '../engine/logical/strategy';
import { migrate, type MigrationReport } from '../engine/migrate';
import { progressView } from '../engine/progress-view';
import { formatCutover, formatReport, formatSync } from '../engine/report';
import { formatBytes, formatDuration, parseSize } from '../engine/units';
import { APP_ROLE, loadSample } from './sample-db';
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
}

interface LogicalRehearsal {
  readonly strategy: 'logical';
  readonly sampleBytes: number;
  readonly sync: SyncReport;
  readonly cutover: CutoverReport;
  readonly load: LoadSummary;
  /** From the application's side: last commit on the source to first commit on the target. */
  readonly appWriteGapSeconds: number | null;
  readonly ledger: LedgerCheck;
  readonly ok: boolean;
}

const log = (line: string): void => void process.stderr.write(line + '\n');

async function servers(o: RehearseOptions): Promise<[LocalServer, LocalServer]> {
  const t0 = Date.now();
  const [source, target] = await Promise.all([
    startServer({ major: o.from, name: 'source' }),
    startServer({ major: o.to, name: 'target' }),
  ]);
  log(
    `servers: source PostgreSQL ${o.from} on 127.0.0.1:${source.port}, target PostgreSQL ${o.to} on 127.0.0.1:${target.port} (${formatDuration((Date.now() - t0) / 1000)})`,
  );
  // The application database is "shop" on both sides, as it would be on real servers.
  for (const s of [source, target]) await withClient(s.conn(), 'local server', (c) => c.query('CREATE DATABASE shop'));
  return [source, target];
}

async function rehearseLogical(o: RehearseOptions): Promise<LogicalRehearsal> {
  const [source, target] = await servers(o);
  const sample = await loadSample(source.conn('shop'), { sizeBytes: o.size, log });
  log(`sample: ${formatBytes(sample.bytes)} loaded in ${formatDuration(sample.seconds)}`);
  const load = new WriteLoad(source.conn('shop'), { rate: o.rate, workers: 4, user: { name: APP_ROLE, password: sample.appPassword } });
  await load.start();
  log(`write load: ${o.rate} transactions/s on the source as ${APP_ROLE}, with a ledger`);
  const emit = progressView();
  // The sample has a key-less table (schema_migrations): let pgferry give it REPLICA IDENTITY FULL.
  const options = { replicaIdentityFull: true, verify: o.verify, ...(o.jobs ? { jobs: o.jobs } : {}) };
  try {
    const s = await sync(source.conn('shop'), target.conn('shop'), options, emit);
    log(`streaming for ${o.streamSeconds}s under load …`);
    await new Promise((r) => setTimeout(r, o.streamSeconds * 1000));
    const c = await cutover(source.conn('shop'), target.conn('shop'), options, emit);
    // The deploy that points the application at the new server.
    load.switchTo(target.conn('shop'));
    await new Promise((r) => setTimeout(r, 2000));
    const summary = await load.stop();
    const ledger = await load.ledger.check(target.conn('shop'));
    return {
      strategy: 'logical',
      sampleBytes: sample.bytes,
      sync: s,
      cutover: c,
      load: summary,
      appWriteGapSeconds: load.writeGap(),
      ledger,
      ok: ledger.ok,
    };
  } finally {
    await load.stop().catch(() => undefined);
  }
}

function formatLogical(r: LogicalRehearsal): string {
  const copy = r.sync.copy;
  return [
    formatSync(r.sync),
    formatCutover(r.cutover),
    'rehearsal',
    `  sample            ${formatBytes(r.sampleBytes)}`,
    copy
      ? `  copy throughput   ${formatBytes(copy.bytes / Math.max(copy.seconds, 0.001))}/s (${formatBytes(copy.bytes)} in ${formatDuration(copy.seconds)})`
      : '',
    `  catch-up          ${formatDuration(r.sync.catchUpSeconds ?? 0)} to apply ${formatBytes(r.sync.backlogBytes ?? 0)} of WAL written during the copy`,
    `  write-blackout    ${formatDuration(r.cutover.blackoutSeconds)} measured by pgferry; ${r.appWriteGapSeconds === null ? 'n/a' : formatDuration(r.appWriteGapSeconds)} seen by the application (last commit on the source → first on the target)`,
    `  write load        ${r.load.committed} commits, ${r.load.failed} refused during the fence, ${r.load.uncertain} cut off mid-statement (${r.load.perSecond.toFixed(0)}/s)`,
    `  ledger            ${r.ledger.ok ? 'OK' : 'FAILED'} — ${r.ledger.checked} written keys checked on the target, ${r.ledger.missing.length} missing, ${r.ledger.wrong.length} stale, ${r.ledger.resurrected.length} resurrected`,
  ]
    .filter(Boolean)
    .join('\n');
}

async function rehearseDumpRestore(o: RehearseOptions): Promise<MigrationReport> {
  const [source, target] = await servers(o);
  const sample = await loadSample(source.conn('shop'), { sizeBytes: o.size, log });
  log(`sample: ${formatBytes(sample.bytes)} loaded in ${formatDuration(sample.seconds)}`);
  return migrate(
    source.conn('shop'),
    target.conn('shop'),
    { strategy: 'dump-restore', ...(o.jobs ? { jobs: o.jobs } : {}) },
    progressView(),
  );
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
    .addOption(new Option('--size <size>', 'sample database size, e.g. 300MB or 2GB').default('300MB').env('PGFERRY_SAMPLE_SIZE'))
    .option('--jobs <n>', 'parallel jobs', num('a number of jobs'))
    .addOption(
      new Option('--strategy <name>', 'migration strategy')
        .choices(STRATEGIES.filter((s) => s === 'logical' || s === 'dump-restore'))
        .default('logical'),
    )
    .option('--rate <tps>', 'write load, transactions per second', num('transactions per second'), 200)
    .option('--stream-seconds <s>', 'how long to stream under load before the cutover', num('seconds'), 5)
    .addOption(
      new Option('--verify <mode>', 'verification inside the cutover window').choices(['count', 'checksum', 'none']).default('count'),
    )
    .option('--json', 'print the report as JSON')
    .parse();
  const raw = cmd.opts<Omit<RehearseOptions, 'size'> & { size: string }>();
  const o: RehearseOptions = { ...raw, size: parseSize(raw.size) };
  const print = (json: unknown, text: string): void => void process.stdout.write((o.json ? JSON.stringify(json, null, 2) : text) + '\n');
  try {
    if (o.strategy === 'logical') {
      const r = await rehearseLogical(o);
      print(r, formatLogical(r));
      return r.ok ? ExitCode.ok : ExitCode.verifyFailed;
    }
    const report = await rehearseDumpRestore(o);
    print(report, formatReport(report));
    return ExitCode.ok;
  } catch (e) {
    const report = (e as { report?: MigrationReport }).report;
    if (report) print(report, formatReport(report));
    if (isPgferryError(e)) {
      process.stderr.write(`pgferry: ${e.message}\n  fix: ${e.fix}\n`);
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
