/**
 * PostgreSQL 15's regression database, as pg_upgrade's own tests use it: the
 * torture test of every kind of object. Built once per machine from Debian's
 * `postgresql-15` source package (only `src/test/regress`), its test module
 * compiled against Debian's server headers, and `pg_regress` run against a
 * local Debian 15 server; the stopped data directory is cached and every test
 * run starts a copy of it.
 *
 * apt reads a deb-src list of its own, made from the machine's own deb
 * sources, in a directory of its own: the machine's apt configuration is
 * left as it is, and no registry is named here.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { startServer, type LocalServer } from '../../engine/local/cluster';

const MAJOR = 15;
const DEBIAN_LIB = `/usr/lib/postgresql/${MAJOR}/lib`;
const PG_REGRESS = `${DEBIAN_LIB}/pgxs/src/test/regress/pg_regress`;

export interface RegressionTemplate {
  /** The stopped data directory holding the `regression` database. */
  readonly dataDir: string;
  /** Where regress.so (and the contrib modules the tests load) live: the functions' paths point here. */
  readonly libDir: string;
  /** Source package version the tests came from, the tests that failed (a minor-version mismatch), and the build's seconds. */
  readonly version: string;
  readonly failed: readonly string[];
  readonly seconds: number;
}

/** The cache: readable by the server's OS user, which loads regress.so from it. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env['PGRELOCATE_CACHE_DIR']) return path.join(env['PGRELOCATE_CACHE_DIR'], `regress${MAJOR}`);
  if (process.getuid?.() === 0) return `/var/cache/pgrelocate/regress${MAJOR}`;
  return path.join(env['XDG_CACHE_HOME'] ?? path.join(os.homedir(), '.cache'), 'pgrelocate', `regress${MAJOR}`);
}

/** deb-src stanzas for every deb source the machine has (deb822 and one-line lists). Pure. */
export function debSrcSources(files: readonly { name: string; text: string }[]): string {
  const out: string[] = [];
  for (const f of files) {
    if (f.name.endsWith('.sources')) {
      for (const stanza of f.text.split(/\n\s*\n/)) {
        if (/^Types:.*\bdeb\b/m.test(stanza) && !/^Enabled:\s*no/im.test(stanza)) {
          out.push(stanza.replace(/^Types:.*$/m, 'Types: deb-src').trim());
        }
      }
    } else if (f.name.endsWith('.list')) {
      const lines = f.text
        .split('\n')
        .filter((l) => /^deb\s/.test(l))
        .map((l) => l.replace(/^deb\s/, 'deb-src '));
      if (lines.length > 0) out.push(lines.join('\n'));
    }
  }
  return out.join('\n\n') + '\n';
}

function machineSources(): { name: string; text: string }[] {
  const files: { name: string; text: string }[] = [];
  if (existsSync('/etc/apt/sources.list')) files.push({ name: 'sources.list', text: readFileSync('/etc/apt/sources.list', 'utf8') });
  const dir = '/etc/apt/sources.list.d';
  if (existsSync(dir)) for (const n of readdirSync(dir)) files.push({ name: n, text: readFileSync(path.join(dir, n), 'utf8') });
  return files;
}

async function run(file: string, args: string[], cwd: string, what: string): Promise<string> {
  const r = await execa(file, args, { cwd, reject: false, all: true });
  if (r.exitCode !== 0) throw new Error(`${what} failed (${file} ${args.join(' ')}):\n${String(r.all).slice(-3000)}`);
  return String(r.stdout);
}

/** Fetch and unpack the regression tests, compile regress.so; returns the source version and the tests' directory. */
async function prepareSources(work: string, libDir: string): Promise<{ version: string; regressDir: string }> {
  const apt = path.join(work, 'apt');
  mkdirSync(path.join(apt, 'lists', 'partial'), { recursive: true });
  writeFileSync(path.join(apt, 'src.sources'), debSrcSources(machineSources()));
  const aptArgs = [
    '-o',
    `Dir::Etc::SourceList=${path.join(apt, 'src.sources')}`,
    '-o',
    'Dir::Etc::SourceParts=/nonexistent',
    '-o',
    `Dir::State::Lists=${path.join(apt, 'lists')}`,
  ];
  await run('apt-get', [...aptArgs, 'update'], work, 'Reading the deb-src index');
  const shown = await run('apt-cache', [...aptArgs, 'showsrc', `postgresql-${MAJOR}`], work, 'Listing postgresql-15 sources');
  const versions = [...new Set([...shown.matchAll(/^Version: (\S+)/gm)].map((m) => m[1]!))].reverse();
  if (versions.length === 0) throw new Error(`No postgresql-${MAJOR} source package in the machine's Debian sources.`);
  // The newest may be listed before its files reach a mirror: take the first that downloads.
  const src = path.join(work, 'src');
  mkdirSync(src, { recursive: true });
  let version = '';
  const errors: string[] = [];
  for (const v of versions) {
    const r = await execa('apt-get', [...aptArgs, 'source', '--download-only', `postgresql-${MAJOR}=${v}`], {
      cwd: src,
      reject: false,
      all: true,
    });
    if (r.exitCode === 0) {
      version = v;
      break;
    }
    errors.push(`${v}: ${String(r.all).split('\n').slice(-2).join(' ')}`);
  }
  if (!version) throw new Error(`Could not download the postgresql-${MAJOR} source package:\n${errors.join('\n')}`);
  const tarball = readdirSync(src).find((n) => /\.orig\.tar\.(bz2|gz|xz)$/.test(n));
  if (!tarball) throw new Error(`The postgresql-${MAJOR} source package has no .orig tarball in ${src}.`);
  await run('tar', ['-xf', tarball, '--wildcards', '*/src/test/regress/*'], src, 'Unpacking src/test/regress');
  const top = readdirSync(src).find((n) => existsSync(path.join(src, n, 'src', 'test', 'regress', 'regress.c')));
  const regressDir = path.join(src, top!, 'src', 'test', 'regress');
  // Server headers only, unpacked here: installing postgresql-server-dev would pull in clang and LLVM.
  const dev = path.join(work, 'dev');
  mkdirSync(dev, { recursive: true });
  await run('apt-get', ['download', `postgresql-server-dev-${MAJOR}`], dev, 'Downloading the server headers');
  const deb = readdirSync(dev).find((n) => n.endsWith('.deb'))!;
  await run('dpkg-deb', ['-x', deb, 'root'], dev, 'Unpacking the server headers');
  const include = path.join(dev, 'root', 'usr', 'include', 'postgresql', String(MAJOR), 'server');
  mkdirSync(libDir, { recursive: true });
  await run(
    'gcc',
    ['-O2', '-fPIC', '-shared', '-I', include, '-o', path.join(libDir, 'regress.so'), path.join(regressDir, 'regress.c')],
    work,
    'Compiling regress.c',
  );
  // The trigger tests load two contrib modules from the same directory; Debian's build of them fits the server.
  for (const m of ['autoinc.so', 'refint.so']) {
    rmSync(path.join(libDir, m), { force: true });
    symlinkSync(path.join(DEBIAN_LIB, m), path.join(libDir, m));
  }
  return { version, regressDir };
}

/**
 * The cached regression database, built first when missing. Needs Debian's
 * postgresql-15 (server and client: pg_regress ships with the client), apt,
 * dpkg-deb, tar and gcc.
 */
export async function regressionTemplate(): Promise<RegressionTemplate> {
  const dir = cacheDir();
  const ready = path.join(dir, 'ready.json');
  if (existsSync(ready) && existsSync(path.join(dir, 'template', 'PG_VERSION'))) {
    return JSON.parse(readFileSync(ready, 'utf8')) as RegressionTemplate;
  }
  if (!existsSync(PG_REGRESS)) {
    throw new Error(`pg_regress is missing (${PG_REGRESS}). Fix: apt-get install -y postgresql-${MAJOR} postgresql-client-${MAJOR}`);
  }
  const started = Date.now();
  rmSync(dir, { recursive: true, force: true });
  const work = path.join(dir, 'build');
  const libDir = path.join(dir, 'lib');
  mkdirSync(work, { recursive: true });
  // The server's OS user loads regress.so from here and writes the tests' COPY output.
  for (let d = dir; d !== path.dirname(d) && d.startsWith(path.dirname(cacheDir())); d = path.dirname(d)) chmodSync(d, 0o755);
  const { version, regressDir } = await prepareSources(work, libDir);
  const out = path.join(work, 'out');
  mkdirSync(path.join(out, 'results'), { recursive: true });
  chmodSync(out, 0o1777);
  chmodSync(path.join(out, 'results'), 0o1777);
  let server: LocalServer | undefined = await startServer({ major: MAJOR, origin: 'debian', name: 'regress', ssl: false, keepData: true });
  let failed: string[] = [];
  try {
    const r = await execa(
      PG_REGRESS,
      [
        `--inputdir=${regressDir}`,
        `--outputdir=${out}`,
        `--bindir=/usr/lib/postgresql/${MAJOR}/bin`,
        `--dlpath=${libDir}`,
        `--host=${server.baseDir}`,
        `--port=${server.port}`,
        `--user=${server.superuser}`,
        '--max-concurrent-tests=20',
        `--schedule=${path.join(regressDir, 'parallel_schedule')}`,
      ],
      { reject: false, all: true, env: { PGPASSWORD: undefined } },
    );
    // A few tests fail on a minor-version mismatch with the installed server; the database they leave is what counts.
    failed = [...String(r.all).matchAll(/^\S*\s+(\S+)\s+\.\.\. FAILED/gm)].map((m) => m[1]!);
    if (!/tests? (passed|failed)/.test(String(r.all))) throw new Error(`pg_regress did not run:\n${String(r.all).slice(-3000)}`);
    const baseDir = server.baseDir;
    const dataDir = server.dataDir;
    await server.stop();
    server = undefined;
    renameSync(dataDir, path.join(dir, 'template'));
    rmSync(baseDir, { recursive: true, force: true });
  } finally {
    if (server) await server.stop();
  }
  rmSync(work, { recursive: true, force: true });
  const result: RegressionTemplate = {
    dataDir: path.join(dir, 'template'),
    libDir,
    version,
    failed,
    seconds: Math.round((Date.now() - started) / 1000),
  };
  writeFileSync(ready, JSON.stringify(result, null, 2));
  return result;
}

/** A running copy of the regression server (superuser `postgres`, TLS on). */
export async function startRegressionServer(name = 'regression'): Promise<{ server: LocalServer; template: RegressionTemplate }> {
  const template = await regressionTemplate();
  const server = await startServer({ major: MAJOR, origin: 'debian', name, fromDataDir: template.dataDir });
  return { server, template };
}

if (require.main === module) {
  regressionTemplate().then(
    (t) => process.stdout.write(JSON.stringify(t, null, 2) + '\n'),
    (e: Error) => {
      process.stderr.write(e.message + '\n');
      process.exitCode = 1;
    },
  );
}
