/**
 * The local rehearsal (`npm start`): a PostgreSQL 12 source and a 17 target
 * from the npm-packaged binaries, the sample application database, a full
 * migration, verification, a report, and both servers stopped.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { type Strategy, STRATEGIES } from '../engine/check';
import { withClient } from '../engine/conn';
import { ExitCode, isPgferryError } from '../engine/errors';
import { startServer, stopAllServers, type LocalServer } from '../engine/local/cluster';
import { migrate, type MigrationReport } from '../engine/migrate';
import { progressView } from '../engine/progress-view';
import { formatReport } from '../engine/report';
import { formatBytes, formatDuration, parseSize } from '../engine/units';
import { loadSample } from './sample-db';

interface RehearseOptions {
  from: number;
  to: number;
  size: number;
  jobs?: number;
  strategy: Strategy;
  json?: boolean;
}

async function rehearse(o: RehearseOptions): Promise<MigrationReport> {
  const log = (line: string): void => void process.stderr.write(line + '\n');
  const servers: LocalServer[] = [];
  try {
    const t0 = Date.now();
    const [source, target] = await Promise.all([
      startServer({ major: o.from, name: 'source' }),
      startServer({ major: o.to, name: 'target' }),
    ]);
    servers.push(source, target);
    log(
      `servers: source PostgreSQL ${o.from} on 127.0.0.1:${source.port}, target PostgreSQL ${o.to} on 127.0.0.1:${target.port} (${formatDuration((Date.now() - t0) / 1000)})`,
    );
    // The application database is "shop" on both sides, as it would be on real servers.
    for (const s of servers) await withClient(s.conn(), 'local server', (c) => c.query('CREATE DATABASE shop'));
    const sample = await loadSample(source.conn('shop'), { sizeBytes: o.size, log });
    log(`sample: ${formatBytes(sample.bytes)} loaded in ${formatDuration(sample.seconds)}`);
    return await migrate(
      source.conn('shop'),
      target.conn('shop'),
      { strategy: o.strategy, ...(o.jobs ? { jobs: o.jobs } : {}) },
      progressView(),
    );
  } finally {
    await stopAllServers();
  }
}

async function main(): Promise<number> {
  const majorArg = (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw new InvalidArgumentError('a major version such as 12 or 17');
    return n;
  };
  const cmd = new Command('rehearse')
    .description('Local rehearsal: start a source and a target server, load the sample database, migrate, verify, report.')
    .option('--from <major>', 'source PostgreSQL major', majorArg, 12)
    .option('--to <major>', 'target PostgreSQL major', majorArg, 17)
    .addOption(new Option('--size <size>', 'sample database size, e.g. 300MB or 2GB').default('300MB').env('PGFERRY_SAMPLE_SIZE'))
    .option('--jobs <n>', 'parallel jobs', (v) => Number(v))
    .addOption(new Option('--strategy <name>', 'migration strategy').choices(STRATEGIES).default('dump-restore'))
    .option('--json', 'print the report as JSON')
    .parse();
  const raw = cmd.opts<Omit<RehearseOptions, 'size'> & { size: string }>();
  const o: RehearseOptions = { ...raw, size: parseSize(raw.size) };
  try {
    const report = await rehearse(o);
    process.stdout.write((o.json ? JSON.stringify(report, null, 2) : formatReport(report)) + '\n');
    return ExitCode.ok;
  } catch (e) {
    const report = (e as { report?: MigrationReport }).report;
    if (report) process.stdout.write((o.json ? JSON.stringify(report, null, 2) : formatReport(report)) + '\n');
    if (isPgferryError(e)) {
      process.stderr.write(`pgferry: ${e.message}\n  fix: ${e.fix}\n`);
      return e.exitCode;
    }
    process.stderr.write(`rehearsal failed: ${(e as Error).stack ?? String(e)}\n`);
    return ExitCode.failed;
  }
}

void main().then((code) => {
  process.exitCode = code;
});
