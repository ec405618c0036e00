/**
 * `npm run bench`: pgferry side by side with the runbook tools on the same
 * data in one run — `pg_dump | psql`, `pg_dump -Fd -j N` + `pg_restore -j N`,
 * and pgcopydb when installed — each into a fresh target database, timed
 * wall-clock with peak memory (GNU time), then checked with pgferry's verifier.
 * A measurement, not a test: it prints ratios and never fails on them.
 */
import { existsSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command, Option } from 'commander';
import { execa } from 'execa';
import { ident, withClient, type ConnInfo } from '../engine/conn';
import { startServer, stopAllServers } from '../engine/local/cluster';
import { libpqUrl, runTool } from '../engine/tool-exec';
import { selectClientTools } from '../engine/tools';
import { formatBytes, formatDuration, parseSize } from '../engine/units';
import { verify } from '../engine/verify';
import { loadSample } from '../scripts/sample-db';

interface Result {
  readonly name: string;
  readonly seconds: number | null;
  readonly maxRssKiB: number | null;
  readonly verified: boolean | null;
  readonly note: string;
}

const TIME = '/usr/bin/time';

/** Run a shell pipeline under GNU time; passwords through a passfile. */
async function timed(script: string, conns: ConnInfo[]): Promise<{ seconds: number; maxRssKiB: number; ok: boolean; stderr: string }> {
  const r = await runTool(TIME, ['-f', 'PGFERRY_TIME %e %M', 'sh', '-c', script], conns);
  const m = /PGFERRY_TIME ([\d.]+) (\d+)/.exec(r.stderr);
  return { seconds: Number(m?.[1] ?? NaN), maxRssKiB: Number(m?.[2] ?? NaN), ok: r.exitCode === 0, stderr: r.stderr };
}

const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

async function main(): Promise<void> {
  const cmd = new Command('bench')
    .addOption(new Option('--size <size>', 'sample size').default('300MB').env('PGFERRY_BENCH_SIZE'))
    .option('--from <major>', 'source major', (v) => Number(v), 12)
    .option('--to <major>', 'target major', (v) => Number(v), 17)
    .option('--jobs <n>', 'parallel jobs', (v) => Number(v), Math.max(2, os.cpus().length))
    .option('--json', 'JSON output')
    .parse();
  const o = cmd.opts<{ size: string; from: number; to: number; jobs: number; json?: boolean }>();
  if (!existsSync(TIME)) throw new Error('GNU time is needed to measure memory: apt-get install -y time');
  const log = (l: string): void => void process.stderr.write(l + '\n');
  const [src, dst] = await Promise.all([
    startServer({ major: o.from, name: 'bench-src' }),
    startServer({ major: o.to, name: 'bench-dst' }),
  ]);
  const work = mkdtempSync(path.join(process.env['PGFERRY_WORK_DIR'] ?? os.tmpdir(), 'pgferry-bench-'));
  try {
    await withClient(src.conn(), 'source', (c) => c.query('CREATE DATABASE shop'));
    const sample = await loadSample(src.conn('shop'), { sizeBytes: parseSize(o.size), log });
    log(`bench: ${formatBytes(sample.bytes)} sample on PostgreSQL ${o.from}, target ${o.to}, ${o.jobs} jobs`);
    const source = src.conn('shop');
    const tools = await selectClientTools(o.from);
    const fresh = async (name: string): Promise<ConnInfo> => {
      await withClient(dst.conn(), 'target', (c) => c.query(`CREATE DATABASE ${ident(name)}`));
      return dst.conn(name);
    };
    const psql = path.join(tools.bindir, 'psql');
    // Roles first, once (seed 000's grep keeps the admin role's password), so every method restores the same objects with their owners and grants.
    const roles = await timed(
      `${q(tools.pgDumpAll)} --globals-only -d ${q(libpqUrl(source))} | grep -v -E 'ROLE postgres' | ${q(psql)} -q -X -d ${q(libpqUrl(dst.conn()))} >/dev/null`,
      [source, dst.conn()],
    );
    if (!roles.ok) log(`bench: roles: ${roles.stderr.split('\n').slice(-3).join(' ')}`);
    const results: Result[] = [];
    const check = async (target: ConnInfo): Promise<boolean> => (await verify(source, target, { mode: 'count', jobs: 2 })).ok;

    const cases: {
      name: string;
      run: (t: ConnInfo) => Promise<{ seconds: number; maxRssKiB: number; ok: boolean; stderr: string } | string>;
    }[] = [
      {
        name: 'pg_dump | psql',
        run: (t) =>
          timed(`${q(tools.pgDump)} -d ${q(libpqUrl(source))} | ${q(psql)} -q -X -v ON_ERROR_STOP=0 -d ${q(libpqUrl(t))} >/dev/null`, [
            source,
            t,
          ]),
      },
      {
        name: `pg_dump -Fd -j${o.jobs} + pg_restore -j${o.jobs}`,
        run: (t) => {
          const dir = path.join(work, 'fd');
          return timed(
            `rm -rf ${q(dir)} && ${q(tools.pgDump)} -Fd -Z0 -j ${o.jobs} -f ${q(dir)} -d ${q(libpqUrl(source))} && ` +
              `${q(tools.pgRestore)} -j ${o.jobs} -d ${q(libpqUrl(t))} ${q(dir)}`,
            [source, t],
          );
        },
      },
      {
        name: 'pgferry migrate --strategy dump-restore',
        run: (t) => {
          const cli = path.resolve(__dirname, '..', 'scripts', 'cli.js');
          const env = `PGFERRY_SOURCE_URL=${q(libpqUrl(source))} PGFERRY_TARGET_URL=${q(libpqUrl(t))}`;
          return timed(
            `${env} ${q(process.execPath)} ${q(cli)} migrate --quiet --jobs ${o.jobs} --verify none --skip-globals --work-dir ${q(work)} >/dev/null`,
            [source, t],
          );
        },
      },
      {
        name: 'pgcopydb clone',
        run: async (t) => {
          const which = await execa('sh', ['-c', 'command -v pgcopydb'], { reject: false });
          if (which.exitCode !== 0) return 'not installed (apt-get install -y pgcopydb)';
          const dir = path.join(work, 'pgcopydb');
          return timed(
            `pgcopydb clone --source ${q(libpqUrl(source))} --target ${q(libpqUrl(t))} --table-jobs ${o.jobs} --index-jobs ${o.jobs} --dir ${q(dir)} --no-owner`,
            [source, t],
          );
        },
      },
    ];
    let i = 0;
    for (const c of cases) {
      const target = await fresh(`bench_${i++}`);
      log(`bench: ${c.name} …`);
      const r = await c.run(target);
      if (typeof r === 'string') {
        results.push({ name: c.name, seconds: null, maxRssKiB: null, verified: null, note: r });
        continue;
      }
      const verified = await check(target);
      results.push({
        name: c.name,
        seconds: r.seconds,
        maxRssKiB: r.maxRssKiB,
        verified,
        note: r.ok
          ? ''
          : `failed: ${r.stderr
              .split('\n')
              .filter((l) => /error|pgferry:|fix:|ERROR/.test(l))
              .slice(0, 6)
              .join(' ')}`,
      });
    }
    const ours = results.find((r) => r.name.startsWith('pgferry') && !r.note)?.seconds ?? null;
    if (o.json) {
      process.stdout.write(JSON.stringify({ sampleBytes: sample.bytes, from: o.from, to: o.to, jobs: o.jobs, results }, null, 2) + '\n');
    } else {
      process.stdout.write(`\npgferry bench — ${formatBytes(sample.bytes)} sample, PostgreSQL ${o.from} → ${o.to}, ${o.jobs} jobs\n`);
      process.stdout.write(
        `${'method'.padEnd(44)} ${'time'.padStart(9)} ${'vs pgferry'.padStart(11)} ${'peak RSS'.padStart(11)}  verified\n`,
      );
      for (const r of results) {
        const ratio = r.seconds && ours ? `${(r.seconds / ours).toFixed(2)}x` : '-';
        process.stdout.write(
          `${r.name.padEnd(44)} ${(r.seconds === null ? '-' : formatDuration(r.seconds)).padStart(9)} ${ratio.padStart(11)} ` +
            `${(r.maxRssKiB === null ? '-' : formatBytes(r.maxRssKiB * 1024)).padStart(11)}  ${r.verified === null ? '-' : r.verified ? 'yes' : 'NO'}${r.note ? `  ${r.note}` : ''}\n`,
        );
      }
      process.stdout.write(
        'ratio = method time / pgferry time (above 1: pgferry is faster). Peak RSS is the largest process of each pipeline.\n',
      );
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
    await stopAllServers();
  }
}

main().catch((e: Error) => {
  process.stderr.write(`bench failed: ${e.message}\n`);
  process.exitCode = 1;
});
