/**
 * Debian's PgBouncer for the tests and the bench: one process per call, in transaction
 * pooling, with md5 logins from its own auth file and an admin user, its
 * configuration in a directory of its own that pgrelocate may rewrite. As root
 * it runs as the local servers' OS user (PgBouncer refuses root).
 */
import { chmodSync, chownSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import pg from 'pg';
import type { ConnInfo } from '../engine/conn';
import { freePort } from '../engine/local/cluster';
import { serverOsUser } from '../engine/local/os-user';

export const PGBOUNCER = '/usr/sbin/pgbouncer';

export function hasPgbouncer(): boolean {
  return existsSync(PGBOUNCER);
}

export interface Bouncer {
  readonly port: number;
  readonly ini: string;
  /** The admin console, as --pgbouncer-admin takes it. */
  readonly admin: ConnInfo;
  /** A pool of this PgBouncer as the application reaches it. */
  conn(pool: string, user: string, password: string): ConnInfo;
  stop(): Promise<void>;
}

/** Start PgBouncer with one pool per entry of `pools` (name → server database), and logins for `users`. */
export async function startPgbouncer(
  pools: Readonly<Record<string, ConnInfo>>,
  users: readonly { readonly name: string; readonly password: string }[],
): Promise<Bouncer> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgrelocate-pgbouncer-'));
  const port = await freePort();
  const admin = { name: 'pgb_admin', password: 'admin-' + Math.random().toString(36).slice(2) };
  const ini = path.join(dir, 'pgbouncer.ini');
  const quote = (s: string) => `"${s.replace(/"/g, '""')}"`;
  writeFileSync(path.join(dir, 'userlist.txt'), [...users, admin].map((u) => `${quote(u.name)} ${quote(u.password)}`).join('\n') + '\n', {
    mode: 0o600,
  });
  writeFileSync(
    ini,
    [
      '[databases]',
      ...Object.entries(pools).map(([name, c]) => `${name} = host=${c.host} port=${c.port} dbname=${c.database}`),
      '',
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = md5',
      `auth_file = ${path.join(dir, 'userlist.txt')}`,
      `admin_users = ${admin.name}`,
      'pool_mode = transaction',
      'default_pool_size = 10',
      // pgrelocate's own sessions and the write load send these; PgBouncer would refuse the login otherwise.
      'ignore_startup_parameters = options,extra_float_digits',
      'server_tls_sslmode = disable',
      `logfile = ${path.join(dir, 'pgbouncer.log')}`,
      `pidfile = ${path.join(dir, 'pgbouncer.pid')}`,
      '',
    ].join('\n'),
  );
  const osUser = serverOsUser();
  if (osUser) {
    chownSync(dir, osUser.uid, osUser.gid);
    for (const f of ['userlist.txt', 'pgbouncer.ini']) chownSync(path.join(dir, f), osUser.uid, osUser.gid);
  }
  chmodSync(dir, 0o755);
  const child: ResultPromise = execa(PGBOUNCER, [...(osUser ? ['-u', osUser.name] : []), ini], { reject: false, stdio: 'ignore' });
  // sslmode prefer, as a client would leave it: this PgBouncer has no TLS of its own (a local hop), so both fall back.
  const adminConn: ConnInfo = {
    host: '127.0.0.1',
    port,
    user: admin.name,
    password: admin.password,
    database: 'pgbouncer',
    sslmode: 'prefer',
    params: {},
  };
  for (let i = 0; ; i++) {
    const c = new pg.Client({ host: '127.0.0.1', port, user: admin.name, password: admin.password, database: 'pgbouncer' });
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.end();
      break;
    } catch (e) {
      if (i > 100) throw new Error(`PgBouncer did not start: ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    port,
    ini,
    admin: adminConn,
    conn: (pool, user, password) => ({ host: '127.0.0.1', port, user, password, database: pool, sslmode: 'prefer', params: {} }),
    async stop() {
      child.kill('SIGTERM');
      await child;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
