/**
 * `npm run bench -- <copy|cutover|memory>`: measurements, not tests. Each
 * prints a table and writes JSON under bench/results/.
 *
 *   copy     pgrelocate (with its verification) beside `pg_dump | psql`,
 *            `pg_dump -Fd -j` + `pg_restore -j` and `pgcopydb clone` on the
 *            same data, for each `--shape` (bench/shapes.ts), alternating over
 *            runs; wall time, MB/s, rows/s, the machine's CPU and the method's
 *            own, peak RSS, the ratio to the fastest peer run by run,
 *            pgrelocate's steps, every target verified against the source;
 *            for each `--topology`: on loopback, or from a worker namespace
 *            with round trips added to each server (bench/topology.ts).
 *   cutover  the sample at several scales under a steady write load, straight
 *            to the database and through PgBouncer: sync,
 *            cutover; the write blackout seen by pgrelocate and by the client,
 *            the pinned verification and how long it held writers, failed
 *            transactions, the ledger each run.
 *   memory   pgrelocate's peak RSS while copying one --shape at several scales.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command, Option } from 'commander';
import { execa } from 'execa';
import { ident, withClient, type ConnInfo } from '../engine/conn';
import { startServer, stopAllServers, type LocalServer } from '../engine/local/cluster';
import { cutover } from '../engine/strategies';
import { hasPgbouncer, startPgbouncer } from '../scripts/local-pgbouncer';
import { sync } from '../engine/strategies/logical';
import { libpqUrl, runTool } from '../engine/tool-exec';
import { selectClientTools, type ClientTools } from '../engine/tools';
import { formatBytes, formatDuration, parseSize } from '../engine/units';
import { verify } from '../engine/verify';
import { APP_ROLE, loadSample } from '../scripts/sample-db';
import { loadShape, SHAPES, type Shape } from './shapes';
import { DelayProxy, parseTopologies, WorkerNamespace, type TopologySpec } from './topology';
import { WriteLoad } from '../scripts/write-load';

const TIME = '/usr/bin/time';
const RESULTS = path.resolve(__dirname, '..', '..', 'bench', 'results');
const log = (l: string): void => void process.stderr.write(l + '\n');
const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface Timed {
  readonly seconds: number;
  readonly maxRssKiB: number;
  /** Busy CPU time of the whole machine during the run (servers, tools and pgrelocate together). */
  readonly cpuSeconds: number;
  /** CPU time (user + system) of the method's own processes: the tools, or pgrelocate's node process; not the servers'. */
  readonly toolCpuSeconds: number;
  readonly ok: boolean;
  readonly stderr: string;
}

/** Run a shell pipeline under GNU time, inside the worker's namespace when given; passwords through a passfile. */
async function timedIn(script: string, conns: ConnInfo[], worker?: WorkerNamespace): Promise<Timed> {
  const busy0 = busyCpuSeconds();
  const args = ['-f', 'PGRELOCATE_TIME %e %M %U %S', 'sh', '-c', script];
  const r = await (worker ? runTool(...worker.wrap(TIME, args), conns) : runTool(TIME, args, conns));
  const cpuSeconds = busyCpuSeconds() - busy0;
  const m = /PGRELOCATE_TIME ([\d.]+) (\d+) ([\d.]+) ([\d.]+)/.exec(r.stderr);
  return {
    seconds: Number(m?.[1] ?? NaN),
    maxRssKiB: Number(m?.[2] ?? NaN),
    cpuSeconds,
    toolCpuSeconds: Number(m?.[3] ?? NaN) + Number(m?.[4] ?? NaN),
    ok: r.exitCode === 0,
    stderr: r.stderr,
  };
}

/**
 * Busy CPU seconds of the machine so far (/proc/stat: every state but idle and
 * iowait). The source and the target share these cores here, so a method's
 * wall time cannot drop below its CPU time divided by the core count.
 */
export function busyCpuSeconds(stat = readFileSync('/proc/stat', 'utf8')): number {
  const f = (/^cpu\s+(.*)$/m.exec(stat)?.[1] ?? '').trim().split(/\s+/).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
  return (user + nice + system + irq + softirq + steal) / 100;
}

function machine(): Record<string, unknown> {
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? '',
    memoryGiB: Math.round(os.totalmem() / 1024 ** 3),
    node: process.version,
    date: new Date().toISOString(),
  };
}

function save(kind: string, data: unknown): string {
  mkdirSync(RESULTS, { recursive: true });
  const file = path.join(RESULTS, `${kind}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(data, null, 2) + '\n');
  writeFileSync(path.join(RESULTS, `${kind}-latest.json`), JSON.stringify(data, null, 2) + '\n');
  return file;
}

async function servers(from: number, to: number): Promise<[LocalServer, LocalServer]> {
  // Without TLS, as every published figure was measured: the peers and pgrelocate would pay it alike.
  return Promise.all([
    startServer({ major: from, name: 'bench-src', ssl: false }),
    startServer({ major: to, name: 'bench-dst', ssl: false }),
  ]);
}

/** The median of 20 `SELECT 1` as psql times them from where the methods run: the round trip they pay. */
async function measureRtt(tools: ClientTools, conn: ConnInfo, worker: WorkerNamespace): Promise<number> {
  const psql = path.join(tools.bindir, 'psql');
  const args = [
    '-X',
    '-A',
    '-t',
    '-d',
    libpqUrl(conn),
    '-c',
    '\\timing on',
    ...Array.from({ length: 20 }, () => ['-c', 'SELECT 1']).flat(),
  ];
  const r = await runTool(...worker.wrap(psql, args), [conn], { captureStdout: true });
  return median([...r.stdout.matchAll(/Time: ([\d.]+) ms/g)].map((m) => Number(m[1])));
}

async function createDb(s: LocalServer, name: string): Promise<ConnInfo> {
  await withClient(s.conn(), 'server', (c) => c.query(`CREATE DATABASE ${ident(name)}`));
  return s.conn(name);
}

async function dropDb(s: LocalServer, name: string): Promise<void> {
  await withClient(s.conn(), 'server', (c) => c.query(`DROP DATABASE IF EXISTS ${ident(name)} WITH (FORCE)`)).catch(() =>
    withClient(s.conn(), 'server', (c) => c.query(`DROP DATABASE IF EXISTS ${ident(name)}`)),
  );
}

/** Roles from the source onto the target server, as seed 000 does (its grep keeps the admin role's password). */
async function copyGlobals(tools: ClientTools, source: ConnInfo, dst: LocalServer): Promise<void> {
  const psql = path.join(tools.bindir, 'psql');
  const script = `${q(tools.pgDumpAll)} --globals-only -d ${q(libpqUrl(source))} | grep -v -E 'ROLE postgres' | ${q(psql)} -q -X -d ${q(libpqUrl(dst.conn()))} >/dev/null`;
  await timedIn(script, [source, dst.conn()]);
}

/** Where the pgrelocate method leaves its JSON report (its steps' times) in the work directory. */
const REPORT = 'pgrelocate-report.json';

/** pgrelocate's own account of a copy: seconds per step, and the rest (start-up, inspection, exit). Pure. */
export function stepSeconds(
  report: { seconds: number; steps: { name: string; seconds: number }[] },
  wallSeconds: number,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const st of report.steps) out[st.name] = (out[st.name] ?? 0) + st.seconds;
  out['outside steps'] = Math.max(0, wallSeconds - report.steps.reduce((t, st) => t + st.seconds, 0));
  return out;
}

interface Method {
  readonly name: string;
  readonly run: (source: ConnInfo, target: ConnInfo, work: string) => Promise<Timed | string>;
}

function methods(tools: ClientTools, jobs: number, worker?: WorkerNamespace): Method[] {
  const timed = (script: string, conns: ConnInfo[]): Promise<Timed> => timedIn(script, conns, worker);
  const psql = path.join(tools.bindir, 'psql');
  const cli = path.resolve(__dirname, '..', 'scripts', 'cli.js');
  return [
    {
      name: 'pg_dump | psql',
      run: (s, t) => timed(`${q(tools.pgDump)} -d ${q(libpqUrl(s))} | ${q(psql)} -q -X -d ${q(libpqUrl(t))} >/dev/null`, [s, t]),
    },
    {
      name: `pg_dump -Fd -j${jobs} + pg_restore -j${jobs}`,
      run: (s, t, work) => {
        const dir = path.join(work, 'fd');
        return timed(
          `rm -rf ${q(dir)} && ${q(tools.pgDump)} -Fd -Z0 -j ${jobs} -f ${q(dir)} -d ${q(libpqUrl(s))} && ${q(tools.pgRestore)} -j ${jobs} -d ${q(libpqUrl(t))} ${q(dir)}`,
          [s, t],
        );
      },
    },
    {
      name: `pgcopydb clone (${jobs} table + ${jobs} index jobs)`,
      run: async (s, t, work) => {
        if ((await execa('sh', ['-c', 'command -v pgcopydb'], { reject: false })).exitCode !== 0)
          return 'not installed (apt-get install -y pgcopydb)';
        const dir = path.join(work, 'pgcopydb');
        return timed(
          `rm -rf ${q(dir)} && PATH=${q(tools.bindir)}:$PATH pgcopydb clone --source ${q(libpqUrl(s))} --target ${q(libpqUrl(t))} --table-jobs ${jobs} --index-jobs ${jobs} --dir ${q(dir)} >/dev/null 2>&1`,
          [s, t],
        );
      },
    },
    {
      name: `pgrelocate copy --jobs ${jobs}`,
      // With its verification (row counts, the default): the peers verify nothing, so this is what a user pays.
      run: (s, t, work) =>
        timed(
          `PGRELOCATE_SOURCE_URL=${q(libpqUrl(s))} PGRELOCATE_TARGET_URL=${q(libpqUrl(t))} PGRELOCATE_WORK_DIR=${q(work)} ${q(process.execPath)} ${q(cli)} copy --quiet --json --jobs ${jobs} --skip-globals > ${q(path.join(work, REPORT))}`,
          [s, t],
        ),
    },
  ];
}

async function benchCopy(o: {
  shape: string;
  scale: string;
  runs: number;
  jobs: number;
  from: number;
  to: number;
  topology: string;
  rate: string;
}): Promise<void> {
  const shapes = o.shape.split(',').map((x) => x.trim());
  for (const sh of shapes)
    if (!(SHAPES as readonly string[]).includes(sh))
      throw new Error(`Unknown shape "${sh}". Fix: --shape one or more of ${SHAPES.join(', ')}.`);
  const topologies = parseTopologies(o.topology);
  const worker = topologies.some((t) => t.links) ? await WorkerNamespace.create(o.rate) : undefined;
  const work = mkdtempSync(path.join(process.env['PGRELOCATE_WORK_DIR'] ?? os.tmpdir(), 'pgrelocate-bench-'));
  const all: ShapeResult[] = [];
  try {
    const [src, dst] = await servers(o.from, o.to);
    const tools = await selectClientTools(o.from);
    for (const shape of shapes as Shape[]) {
      for (const r of await benchShape(shape, src, dst, tools, work, o, topologies, worker)) {
        all.push(r);
        printShape(r, o);
      }
    }
    const file = save('copy', {
      machine: machine(),
      scale: o.scale,
      from: o.from,
      to: o.to,
      jobs: o.jobs,
      runs: o.runs,
      rate: o.rate,
      shapes: all,
    });
    process.stdout.write(
      `÷ fastest peer = the fastest other method's time / pgrelocate's time in the same run, median over runs (1 or more: pgrelocate is at least as fast); pgrelocate includes its verification (row counts), the peers verify nothing. CPU = busy time of the whole machine (source, target, tools) during the run; own CPU = the method's own processes (the tools, or pgrelocate's node process). Results: ${path.relative(process.cwd(), file)}\n`,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
    await worker?.close();
  }
}

interface MethodSummary {
  readonly method: string;
  readonly runs: number;
  readonly medianSeconds: number;
  readonly minSeconds: number;
  readonly maxSeconds: number;
  readonly mbPerSecond: number;
  readonly rowsPerSecond: number;
  readonly peakRssMiB: number;
  readonly medianCpuSeconds: number;
  readonly medianOwnCpuSeconds: number;
  readonly verified: boolean;
  readonly note: string;
}

interface ShapeResult {
  readonly shape: Shape;
  /** Where the methods ran: one-box, or netns with each link's round trip (bench/topology.ts). */
  readonly topology: string;
  /** With netns: the round trips psql measured from the worker's namespace. */
  readonly measuredRttMs?: { readonly source: number; readonly target: number };
  readonly description: string;
  readonly tableBytes: number;
  readonly summary: readonly MethodSummary[];
  /** The fastest peer's time over pgrelocate's, run by run: 1 or more means pgrelocate was at least as fast. */
  readonly ratiosToFastestPeer: readonly number[];
  /** pgrelocate's steps, median seconds over runs, from its own report. */
  readonly pgrelocateSteps: Record<string, number>;
  readonly results: Record<string, readonly unknown[]>;
}

async function benchShape(
  shape: Shape,
  src: LocalServer,
  dst: LocalServer,
  tools: ClientTools,
  work: string,
  o: { scale: string; runs: number; jobs: number; from: number; to: number; rate: string },
  topologies: readonly TopologySpec[],
  worker: WorkerNamespace | undefined,
): Promise<ShapeResult[]> {
  const dbName = `bench_${shape.replace(/-/g, '_')}`;
  await dropDb(src, dbName);
  const source = await createDb(src, dbName);
  log(`bench copy: loading ${shape} at ${o.scale} …`);
  const loaded = await loadShape(shape, source, parseSize(o.scale), log);
  // Roles once, so every method restores the same owners and grants.
  await copyGlobals(tools, source, dst);
  const tableBytes = await withClient(source, 'source', async (c) =>
    Number(
      (
        await c.query<{ b: string }>(
          `SELECT coalesce(sum(pg_table_size(oid)), 0)::text AS b FROM pg_class WHERE relkind = 'r' AND relnamespace::regnamespace::text NOT IN ('pg_catalog', 'information_schema') AND relnamespace::regnamespace::text NOT LIKE 'pg_toast%'`,
        )
      ).rows[0]!.b,
    ),
  );
  log(
    `bench copy: ${loaded.description} (${formatBytes(tableBytes)} of table data) on PostgreSQL ${o.from} → ${o.to}, ${o.jobs} jobs, ${o.runs} runs`,
  );
  const out: ShapeResult[] = [];
  for (const topo of topologies) {
    // Through the links and their proxies when the worker is in its namespace; the bench's own checks stay on loopback.
    const proxies =
      topo.links && worker
        ? await Promise.all([
            DelayProxy.start(worker.sourceAddress, src.port, topo.links.sourceRttMs),
            DelayProxy.start(worker.targetAddress, dst.port, topo.links.targetRttMs),
          ])
        : null;
    try {
      const via = (c: ConnInfo, p: DelayProxy | undefined): ConnInfo => (p ? { ...c, host: p.host, port: p.port } : c);
      const rtt = proxies
        ? {
            source: await measureRtt(tools, via(source, proxies[0]), worker!),
            target: await measureRtt(tools, via(dst.conn(), proxies[1]), worker!),
          }
        : null;
      if (rtt) log(`  measured from the worker: source ${rtt.source.toFixed(2)} ms, target ${rtt.target.toFixed(2)} ms a round trip`);
      log(
        `bench copy: ${shape} over ${topo.name}${topo.links ? ` (source ${topo.links.sourceRttMs} ms, target ${topo.links.targetRttMs} ms added to each round trip, ${o.rate} links)` : ''}`,
      );
      const ms = methods(tools, o.jobs, topo.links ? worker : undefined);
      const ours = ms[3]!.name;
      const results: Record<
        string,
        {
          seconds: number;
          maxRssKiB: number;
          cpuSeconds: number;
          ownCpuSeconds: number;
          verified: boolean;
          rows: number;
          steps?: Record<string, number>;
        }[]
      > = {};
      const notes: Record<string, string> = {};
      let n = 0;
      if (out.length === 0) {
        // One run not measured, on the shape's first topology: this machine makes the first database of
        // thousands of tables on a fresh server in about half the time of later ones (2.1 s of pre-data against
        // 5.2–5.9 s), which would favour whichever method ran first.
        const name = `bench_${n++}`;
        const target = await createDb(dst, name);
        log(`  warm-up: ${ms[0]!.name} (not measured) …`);
        await ms[0]!.run(via(source, proxies?.[0]), via(target, proxies?.[1]), work);
        await dropDb(dst, name);
      }
      for (let run = 0; run < o.runs; run++) {
        // Alternate the order so no method always runs first (cold caches) or last.
        const order = ms.map((_, i) => ms[(i + run) % ms.length]!);
        for (const m of order) {
          const name = `bench_${n++}`;
          const target = await createDb(dst, name);
          log(`  run ${run + 1}: ${m.name} …`);
          const r = await m.run(via(source, proxies?.[0]), via(target, proxies?.[1]), work);
          if (typeof r === 'string') {
            notes[m.name] = r;
          } else {
            const v = await verify(source, target, { mode: 'checksum', jobs: 2 });
            const steps =
              m.name === ours && r.ok
                ? stepSeconds(
                    JSON.parse(readFileSync(path.join(work, REPORT), 'utf8')) as {
                      seconds: number;
                      steps: { name: string; seconds: number }[];
                    },
                    r.seconds,
                  )
                : undefined;
            (results[m.name] ??= []).push({
              seconds: r.seconds,
              maxRssKiB: r.maxRssKiB,
              cpuSeconds: r.cpuSeconds,
              ownCpuSeconds: r.toolCpuSeconds,
              verified: r.ok && v.ok,
              rows: v.rows,
              ...(steps ? { steps } : {}),
            });
            if (!r.ok || !v.ok)
              notes[m.name] = r.ok
                ? `verification: ${v.mismatches.slice(0, 3).join('; ')}`
                : `failed: ${r.stderr
                    .split('\n')
                    .filter((l) => /error|ERROR|fatal/i.test(l))
                    .slice(0, 2)
                    .join(' ')}`;
            log(
              `    ${formatDuration(r.seconds)}, machine CPU ${formatDuration(r.cpuSeconds)}, own CPU ${formatDuration(r.toolCpuSeconds)}, peak RSS ${formatBytes(r.maxRssKiB * 1024)}, verified ${r.ok && v.ok}`,
            );
          }
          await dropDb(dst, name);
        }
      }
      const summary = ms.map((m): MethodSummary => {
        const rs = results[m.name] ?? [];
        const secs = rs.map((r) => r.seconds);
        return {
          method: m.name,
          runs: rs.length,
          medianSeconds: median(secs),
          minSeconds: Math.min(...secs),
          maxSeconds: Math.max(...secs),
          mbPerSecond: tableBytes / 1e6 / median(secs),
          rowsPerSecond: (rs[0]?.rows ?? 0) / median(secs),
          peakRssMiB: Math.max(...rs.map((r) => r.maxRssKiB)) / 1024,
          medianCpuSeconds: median(rs.map((r) => r.cpuSeconds)),
          medianOwnCpuSeconds: median(rs.map((r) => r.ownCpuSeconds)),
          verified: rs.length > 0 && rs.every((r) => r.verified),
          note: notes[m.name] ?? '',
        };
      });
      const peers = ms.slice(0, 3).map((m) => results[m.name] ?? []);
      const mine = results[ours] ?? [];
      const ratiosToFastestPeer = mine.map((r, i) => Math.min(...peers.map((p) => p[i]?.seconds ?? Infinity)) / r.seconds);
      const stepNames = [...new Set(mine.flatMap((r) => Object.keys(r.steps ?? {})))];
      const pgrelocateSteps = Object.fromEntries(stepNames.map((k) => [k, median(mine.map((r) => r.steps?.[k] ?? 0))]));
      out.push({
        shape,
        topology: topo.name,
        ...(rtt ? { measuredRttMs: rtt } : {}),
        description: loaded.description,
        tableBytes,
        summary,
        ratiosToFastestPeer,
        pgrelocateSteps,
        results,
      });
    } finally {
      for (const p of proxies ?? []) p.stop();
    }
  }
  await dropDb(src, dbName);
  return out;
}

function printShape(r: ShapeResult, o: { runs: number; jobs: number; from: number; to: number }): void {
  process.stdout.write(
    `\npgrelocate bench copy — ${r.shape} over ${r.topology}${r.measuredRttMs ? ` (round trips measured from the worker: source ${r.measuredRttMs.source.toFixed(1)} ms, target ${r.measuredRttMs.target.toFixed(1)} ms)` : ''}: ${r.description} (${formatBytes(r.tableBytes)} table data), PostgreSQL ${o.from} → ${o.to}, ${o.jobs} jobs, ${o.runs} runs, ${os.cpus().length} cores\n`,
  );
  process.stdout.write(
    `${'method'.padEnd(40)} ${'median'.padStart(8)} ${'min–max'.padStart(15)} ${'MB/s'.padStart(6)} ${'rows/s'.padStart(9)} ${'CPU'.padStart(8)} ${'own CPU'.padStart(8)} ${'peak RSS'.padStart(10)}  verified\n`,
  );
  for (const s of r.summary) {
    if (s.runs === 0) {
      process.stdout.write(`${s.method.padEnd(40)} ${s.note}\n`);
      continue;
    }
    process.stdout.write(
      `${s.method.padEnd(40)} ${formatDuration(s.medianSeconds).padStart(8)} ${`${formatDuration(s.minSeconds)}–${formatDuration(s.maxSeconds)}`.padStart(15)} ${s.mbPerSecond.toFixed(1).padStart(6)} ${Math.round(s.rowsPerSecond).toLocaleString('en-US').padStart(9)} ${formatDuration(s.medianCpuSeconds).padStart(8)} ${formatDuration(s.medianOwnCpuSeconds).padStart(8)} ${`${s.peakRssMiB.toFixed(0)} MiB`.padStart(10)}  ${s.verified ? 'yes' : 'NO'}${s.note ? `  ${s.note}` : ''}\n`,
    );
  }
  const ratio = median(r.ratiosToFastestPeer);
  process.stdout.write(
    `÷ fastest peer: ${ratio.toFixed(2)}x (runs: ${r.ratiosToFastestPeer.map((x) => x.toFixed(2)).join(', ')}); pgrelocate's steps (median s): ${Object.entries(
      r.pgrelocateSteps,
    )
      .map(([k, v]) => `${k} ${v.toFixed(2)}`)
      .join(', ')}\n`,
  );
}

interface CutoverRun {
  readonly scale: string;
  /** The application's path: straight to the database (moved by the deploy after cutover), or through PgBouncer. */
  readonly via: 'direct' | 'pgbouncer';
  readonly sampleBytes: number;
  /** Fence to switch, as pgrelocate measures it: writers wait meanwhile. */
  readonly blackout: number;
  /** The longest stretch without a commit the application saw. */
  readonly clientGap: number;
  /** Writers held while the verification pinned its point (before the fence). */
  readonly verifyStall: number;
  /** The verification itself, while writes went on. */
  readonly verifySeconds: number;
  readonly lockWait: number;
  readonly committed: number;
  /** Transactions the application saw fail (refused, or ended by the switch before their commit). */
  readonly failed: number;
  readonly ledgerOk: boolean;
  readonly checked: number;
}

async function benchCutover(o: {
  scales: string;
  runs: number;
  tps: number;
  jobs: number;
  from: number;
  to: number;
  via: string;
}): Promise<void> {
  const [src, dst] = await servers(o.from, o.to);
  const runs: CutoverRun[] = [];
  const vias = o.via.split(',').filter((v): v is 'direct' | 'pgbouncer' => v === 'direct' || (v === 'pgbouncer' && hasPgbouncer()));
  for (const [k, scale] of o.scales.split(',').entries())
    for (let i = 0; i < o.runs; i++)
      for (const via of vias) {
        const name = `shop_${k}_${i}_${via}`;
        const source = await createDb(src, name);
        const target = await createDb(dst, name);
        const sample = await loadSample(source, { sizeBytes: parseSize(scale), log });
        const bouncer =
          via === 'pgbouncer' ? await startPgbouncer({ shop: source }, [{ name: APP_ROLE, password: sample.appPassword }]) : null;
        const user = { name: APP_ROLE, password: sample.appPassword };
        const load = new WriteLoad(bouncer ? bouncer.conn('shop', user.name, user.password) : source, { rate: o.tps, workers: 4, user });
        await load.start();
        try {
          await sync(source, target, { jobs: o.jobs, replicaIdentityFull: true });
          await new Promise((r) => setTimeout(r, 3000));
          const c = await cutover(source, target, {
            jobs: o.jobs,
            verify: 'count',
            ...(bouncer ? { pgbouncer: { admin: bouncer.admin, ini: bouncer.ini, database: 'shop' } } : {}),
          });
          // Straight to the database, the application is moved by its deploy; through PgBouncer it already is.
          if (!bouncer) load.switchTo(target);
          await new Promise((r) => setTimeout(r, 2000));
          const s = await load.stop();
          const ledger = await load.ledger.check(target);
          const run: CutoverRun = {
            scale,
            via,
            sampleBytes: sample.bytes,
            blackout: c.blackoutSeconds,
            clientGap: load.longestPause(),
            verifyStall: c.verification?.stallSeconds ?? 0,
            verifySeconds: c.steps.find((x) => x.name === 'verify')?.seconds ?? 0,
            lockWait: c.lockWaitSeconds,
            committed: s.committed,
            failed: s.failed + s.uncertain,
            ledgerOk: ledger.ok,
            checked: ledger.checked,
          };
          runs.push(run);
          log(
            `  ${scale} ${via} run ${i + 1}: blackout ${formatDuration(run.blackout)}, client gap ${formatDuration(run.clientGap)}, verify ${formatDuration(run.verifySeconds)} (writers held ${formatDuration(run.verifyStall)}), ${run.failed} failed transactions, ledger ${ledger.ok ? 'OK' : 'FAILED'} (${ledger.checked} keys)`,
          );
        } finally {
          await load.stop().catch(() => undefined);
          await bouncer?.stop();
          await dropDb(src, name).catch(() => undefined);
          await dropDb(dst, name).catch(() => undefined);
        }
      }
  const scales = [...new Set(runs.map((r) => r.scale))];
  const summary = scales.flatMap((scale) =>
    vias.map((via) => {
      const at = runs.filter((r) => r.scale === scale && r.via === via);
      return {
        scale,
        via,
        sampleBytes: at[0]!.sampleBytes,
        blackoutMedian: median(at.map((r) => r.blackout)),
        blackoutMax: Math.max(...at.map((r) => r.blackout)),
        clientGapMedian: median(at.map((r) => r.clientGap)),
        verifySecondsMedian: median(at.map((r) => r.verifySeconds)),
        verifyStallMax: Math.max(...at.map((r) => r.verifyStall)),
        failedMedian: median(at.map((r) => r.failed)),
        lostWrites: at.filter((r) => !r.ledgerOk).length,
      };
    }),
  );
  const file = save('cutover', { machine: machine(), scales, tps: o.tps, runs, summary });
  const lines = [
    `\npgrelocate bench cutover — ${o.tps} writes/s, ${o.runs} runs per scale, PostgreSQL ${o.from} → ${o.to}, verify count`,
    '  sample      via        blackout (median / max)  client gap  verify (writers held)   failed tx  ledger',
    ...summary.map(
      (x) =>
        `  ${formatBytes(x.sampleBytes).padEnd(10)}  ${x.via.padEnd(9)}  ${formatDuration(x.blackoutMedian).padStart(8)} / ${formatDuration(x.blackoutMax).padEnd(12)}  ${formatDuration(x.clientGapMedian).padStart(10)}  ${formatDuration(x.verifySecondsMedian).padStart(8)} (${formatDuration(x.verifyStallMax)})  ${String(x.failedMedian).padStart(10)}  ${x.lostWrites === 0 ? 'complete' : `${x.lostWrites} runs lost writes`}`,
    ),
    `Results: ${path.relative(process.cwd(), file)}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

async function benchMemory(o: { scales: string; shape: string; jobs: number; from: number; to: number }): Promise<void> {
  if (!(SHAPES as readonly string[]).includes(o.shape))
    throw new Error(`Unknown shape "${o.shape}". Fix: --shape one of ${SHAPES.join(', ')}.`);
  const [src, dst] = await servers(o.from, o.to);
  const work = mkdtempSync(path.join(process.env['PGRELOCATE_WORK_DIR'] ?? os.tmpdir(), 'pgrelocate-bench-'));
  const tools = await selectClientTools(o.from);
  const ours = methods(tools, o.jobs)[3]!;
  const rows: { scale: string; shape: string; description: string; sampleBytes: number; seconds: number; peakRssMiB: number }[] = [];
  try {
    for (const [i, scale] of o.scales.split(',').entries()) {
      const source = await createDb(src, `mem_${i}`);
      const loaded = await loadShape(o.shape as Shape, source, parseSize(scale), log);
      const bytes = await withClient(source, 'source', async (c) =>
        Number((await c.query<{ b: string }>('SELECT pg_database_size(current_database())::text AS b')).rows[0]!.b),
      );
      await copyGlobals(tools, source, dst);
      const target = await createDb(dst, `mem_${i}`);
      const r = await ours.run(source, target, work);
      if (typeof r === 'string' || !r.ok)
        throw new Error(`pgrelocate copy failed at ${scale}: ${typeof r === 'string' ? r : r.stderr.slice(-500)}`);
      rows.push({
        scale,
        shape: o.shape,
        description: loaded.description,
        sampleBytes: bytes,
        seconds: r.seconds,
        peakRssMiB: r.maxRssKiB / 1024,
      });
      log(`  ${scale}: ${formatDuration(r.seconds)}, peak RSS ${(r.maxRssKiB / 1024).toFixed(0)} MiB`);
      await dropDb(src, `mem_${i}`);
      await dropDb(dst, `mem_${i}`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const file = save('memory', { machine: machine(), jobs: o.jobs, rows });
  process.stdout.write(`\npgrelocate bench memory — peak RSS of the pgrelocate process during \`pgrelocate copy\`, ${o.jobs} jobs\n`);
  for (const r of rows)
    process.stdout.write(
      `  ${formatBytes(r.sampleBytes).padStart(10)}  ${formatDuration(r.seconds).padStart(8)}  ${r.peakRssMiB.toFixed(0).padStart(5)} MiB  ${r.description}\n`,
    );
  process.stdout.write(`Results: ${path.relative(process.cwd(), file)}\n`);
}

async function main(): Promise<void> {
  const jobsDefault = Math.max(2, os.cpus().length);
  const program = new Command('bench').description('pgrelocate benchmarks (measurements, not tests)');
  const common = (c: Command): Command =>
    c
      .option('--jobs <n>', 'parallel jobs for every tool', (v) => Number(v), jobsDefault)
      .option('--from <major>', 'source major', (v) => Number(v), 12)
      .option('--to <major>', 'target major', (v) => Number(v), 17);
  common(program.command('copy').description('copy speed beside pg_dump|psql, pg_dump -Fd/pg_restore -j and pgcopydb'))
    .addOption(new Option('--scale <size>', 'size of each shape').default('1GB').env('PGRELOCATE_BENCH_SCALE'))
    .option('--shape <list>', `comma-separated data shapes: ${SHAPES.join(', ')}`, 'sample')
    .option('--runs <n>', 'runs per method', (v) => Number(v), 3)
    .option(
      '--topology <list>',
      'where the methods run: one-box (loopback), netns:<rtt>ms or netns:<source rtt>ms/<target rtt>ms (a worker namespace, root only)',
      'one-box',
    )
    .option('--rate <tc rate>', 'bandwidth cap of each netns link', '1gbit')
    .action((o) => benchCopy(o));
  common(program.command('cutover').description('write-blackout at cutover under a steady write load'))
    .option('--scales <list>', 'comma-separated sample sizes (the blackout must not grow with them)', '100MB,1GB')
    .option('--tps <n>', 'writes per second', (v) => Number(v), 200)
    .option('--runs <n>', 'runs', (v) => Number(v), 3)
    .option('--via <list>', "the application's path: direct, pgbouncer (Debian's, when installed)", 'direct,pgbouncer')
    .action((o) => benchCutover(o));
  common(program.command('memory').description("pgrelocate's peak RSS while copying at several scales"))
    .option('--scales <list>', 'comma-separated sizes', '1GB,4GB')
    .option('--shape <shape>', `data shape: ${SHAPES.join(', ')}`, 'sample')
    .action((o) => benchMemory(o));
  try {
    await program.parseAsync();
  } finally {
    await stopAllServers();
  }
}

if (require.main === module) {
  main().catch((e: Error) => {
    process.stderr.write(`bench failed: ${e.message}\n`);
    process.exitCode = 1;
  });
}
