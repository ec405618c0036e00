/**
 * Managed-service profiles for local servers: the roles, privileges and
 * pg_hba rules that AWS RDS and Heroku give their users, rebuilt on a local
 * server so that the tests (and a rehearsal) run as users do — never as a
 * superuser. Every profile runs TLS only, with scram-sha-256.
 *
 * - `rds`: bootstrap superuser `rdsadmin`; NOLOGIN `rds_superuser` (CREATEROLE
 *   CREATEDB, the monitoring roles, pg_signal_backend, pg_create_subscription
 *   on 16+, SET on session_replication_role on 15+) and `rds_replication`; a
 *   LOGIN master user in rds_superuser with CREATEROLE and CREATEDB (and
 *   REPLICATION on a source, where RDS grants it through rds_replication); its
 *   databases are the master's, and the public schema of a ≤ 14 database is
 *   rdsadmin's.
 * - `heroku`: bootstrap superuser `postgres`; one LOGIN role that owns the
 *   database, its schemas and tables, in the monitoring roles only: no
 *   REPLICATION, no CREATEROLE, no replication line in pg_hba.
 * - `superuser`: a self-managed server, the user is its superuser.
 */
import { randomBytes } from 'node:crypto';
import type { ConnInfo } from '../conn';
import { ident, literal, withClient } from '../conn';
import { startServer, type LocalServer } from './cluster';

export type ProfileName = 'rds' | 'heroku' | 'superuser';

/** A local server dressed as a managed service. */
export interface ProfiledServer {
  readonly profile: ProfileName;
  readonly server: LocalServer;
  /** The login a user of the service has (RDS: the master user; Heroku: the database owner). */
  readonly user: { readonly name: string; readonly password: string };
  /** The bootstrap superuser (rdsadmin, postgres): for test set-up only, never handed to pgrelocate. */
  admin(database?: string): ConnInfo;
  /** The user's login on a database. */
  conn(database: string): ConnInfo;
  /** A new database as the service makes it: owned by the user. */
  createDatabase(name: string): Promise<ConnInfo>;
}

/** pg_hba of a profile: TLS only; replication connections only where the service allows them. Pure. */
export function profileHba(profile: ProfileName): string[] {
  const lines = ['local all all trust', 'hostssl all all 127.0.0.1/32 scram-sha-256'];
  if (profile !== 'heroku') lines.push('hostssl replication all 127.0.0.1/32 scram-sha-256');
  return lines;
}

/** The SQL that builds a profile's roles, run as the bootstrap superuser. Pure. */
export function profileSql(profile: ProfileName, major: number, user: string, password: string, source: boolean): string {
  const pw = literal(password);
  switch (profile) {
    case 'superuser':
      return `CREATE ROLE ${ident(user)} LOGIN SUPERUSER PASSWORD ${pw}`;
    case 'heroku':
      return [
        `CREATE ROLE ${ident(user)} LOGIN PASSWORD ${pw}`,
        `GRANT ${major >= 10 ? 'pg_monitor, pg_read_all_settings, pg_read_all_stats' : 'pg_signal_backend'} TO ${ident(user)}`,
      ].join(';\n');
    case 'rds':
      return [
        'CREATE ROLE rds_superuser NOLOGIN CREATEROLE CREATEDB',
        'CREATE ROLE rds_replication NOLOGIN',
        `GRANT pg_signal_backend${major >= 10 ? ', pg_monitor, pg_read_all_settings, pg_read_all_stats' : ''} TO rds_superuser`,
        ...(major >= 16 ? ['GRANT pg_create_subscription TO rds_superuser'] : []),
        ...(major >= 15 ? ['GRANT SET ON PARAMETER session_replication_role TO rds_superuser'] : []),
        'GRANT rds_replication TO rds_superuser',
        // Attributes are not inherited through membership: RDS gives the master CREATEROLE and CREATEDB itself.
        `CREATE ROLE ${ident(user)} LOGIN PASSWORD ${pw} CREATEROLE CREATEDB${source ? ' REPLICATION' : ''} IN ROLE rds_superuser`,
      ].join(';\n');
  }
}

/**
 * Start a server of `major` dressed as `profile`. `source`: the side data
 * leaves from (RDS grants replication there, as `rds.logical_replication`
 * does).
 */
export async function startProfiledServer(
  profile: ProfileName,
  major: number,
  opts: {
    readonly source?: boolean;
    readonly name?: string;
    readonly user?: string;
    /** Extra postgresql.conf settings (shared_preload_libraries for pglogical, as a parameter group sets it). */
    readonly settings?: Readonly<Record<string, string | number | boolean>>;
  } = {},
): Promise<ProfiledServer> {
  const bootstrap = profile === 'rds' ? 'rdsadmin' : 'postgres';
  const server = await startServer({
    major,
    name: opts.name ?? `${profile}${major}`,
    superuser: bootstrap,
    hba: profileHba(profile),
    ...(opts.settings ? { settings: opts.settings } : {}),
  });
  const user = {
    name: opts.user ?? (profile === 'rds' ? 'master' : profile === 'heroku' ? `u${randomBytes(4).toString('hex')}` : 'dba'),
    password: randomBytes(15).toString('base64url'),
  };
  await withClient(server.conn('postgres'), 'local server', (c) =>
    c.query(profileSql(profile, major, user.name, user.password, opts.source ?? false)),
  );
  const conn = (database: string): ConnInfo => server.conn(database, user.name, user.password);
  return {
    profile,
    server,
    user,
    admin: (database = 'postgres') => server.conn(database),
    conn,
    async createDatabase(name: string): Promise<ConnInfo> {
      // RDS: the master creates it (CREATEDB). Heroku: the service creates it for its user.
      if (profile === 'rds') await withClient(conn('postgres'), 'local server', (c) => c.query(`CREATE DATABASE ${ident(name)}`));
      else
        await withClient(server.conn('postgres'), 'local server', (c) =>
          c.query(`CREATE DATABASE ${ident(name)} OWNER ${ident(user.name)}`),
        );
      if (profile === 'heroku' && major <= 14) {
        // Heroku's user owns the schemas of its database, public included.
        await withClient(server.conn(name), 'local server', (c) => c.query(`ALTER SCHEMA public OWNER TO ${ident(user.name)}`));
      }
      return conn(name);
    },
  };
}
