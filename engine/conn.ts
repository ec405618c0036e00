/**
 * Connection strings: parsing, redaction and the two shapes the engine needs —
 * a node-postgres client config, and a libpq URL without its password for the
 * client tools (the password travels through a private passfile instead).
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { PgferryError } from './errors';

export type SslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';

/** One endpoint, parsed from a `postgres://` URL. */
export interface ConnInfo {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string | undefined;
  readonly database: string;
  readonly sslmode: SslMode;
  /** Other libpq query parameters, passed through to the client tools. */
  readonly params: Readonly<Record<string, string>>;
}

const SSL_MODES: readonly SslMode[] = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'];

/** Parse a `postgres://` or `postgresql://` URL; errors never repeat the password. */
export function parseUrl(url: string, label = 'connection URL'): ConnInfo {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new PgferryError(
      'bad-url',
      // Never echo an unparsable URL: the password cannot be told apart from the rest.
      `The ${label} is not a valid URL`,
      'Use the form postgresql://USER:PASSWORD@HOST:PORT/DATABASE (percent-encode special characters in the password).',
    );
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new PgferryError(
      'bad-url',
      `The ${label} must start with postgresql:// (got ${u.protocol}//)`,
      'Use the form postgresql://USER:PASSWORD@HOST:PORT/DATABASE.',
    );
  }
  const params: Record<string, string> = {};
  let sslmode: SslMode = 'prefer';
  for (const [k, v] of u.searchParams) {
    if (k === 'sslmode') {
      if (!SSL_MODES.includes(v as SslMode)) {
        throw new PgferryError('bad-url', `Unknown sslmode "${v}" in the ${label}`, `Use one of ${SSL_MODES.join(', ')}.`);
      }
      sslmode = v as SslMode;
    } else if (k === 'password') {
      // tolerated for libpq compatibility, folded into the password below
    } else {
      params[k] = v;
    }
  }
  const database = decodeURIComponent(u.pathname.replace(/^\//, '')) || 'postgres';
  const user = decodeURIComponent(u.username) || params['user'] || 'postgres';
  const pw = u.password ? decodeURIComponent(u.password) : (u.searchParams.get('password') ?? undefined);
  const host = (u.hostname || '127.0.0.1').replace(/^\[(.*)\]$/, '$1');
  return {
    host,
    port: u.port ? Number(u.port) : 5432,
    user,
    password: pw,
    database,
    sslmode,
    params,
  };
}

/** The same endpoint, another database. */
export function withDatabase(info: ConnInfo, database: string): ConnInfo {
  return { ...info, database };
}

/** Build a URL from parts; the password is included only when asked. */
export function toUrl(info: ConnInfo, opts: { password?: boolean } = {}): string {
  const auth =
    encodeURIComponent(info.user) + (opts.password && info.password !== undefined ? ':' + encodeURIComponent(info.password) : '');
  const host = info.host.includes(':') ? `[${info.host}]` : info.host;
  const q = new URLSearchParams(info.params);
  if (info.sslmode !== 'prefer') q.set('sslmode', info.sslmode);
  const qs = q.toString();
  return `postgresql://${auth}@${host}:${info.port}/${encodeURIComponent(info.database)}${qs ? '?' + qs : ''}`;
}

/** A printable description of an endpoint: never contains the password. */
export function describe(info: ConnInfo): string {
  return toUrl(info, { password: false });
}

/**
 * Remove anything that looks like a password from free text: URL userinfo,
 * `password=...` pairs and `PASSWORD '...'` clauses (role DDL).
 */
export function redact(text: string): string {
  return text
    .replace(/(postgres(?:ql)?:\/\/[^:/@\s]*):[^@\s]*@/gi, '$1:***@')
    .replace(/(password\s*=\s*)('[^']*'|"[^"]*"|[^\s&;]+)/gi, '$1***')
    .replace(/(PASSWORD\s+)('(?:[^']|'')*'|"[^"]*")/gi, "$1'***'");
}

function sslConfig(info: ConnInfo): pg.ClientConfig['ssl'] {
  switch (info.sslmode) {
    case 'disable':
    case 'allow':
      return false;
    case 'prefer':
    case 'require':
      return { rejectUnauthorized: false };
    case 'verify-ca':
    case 'verify-full': {
      const root = info.params['sslrootcert'];
      return {
        rejectUnauthorized: true,
        ...(root ? { ca: readFileSync(root, 'utf8') } : {}),
        ...(info.sslmode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}),
      };
    }
  }
}

/** node-postgres client config for an endpoint. */
/**
 * Every pgferry session turns off the server's or role's timeouts, as pg_dump
 * does: a `statement_timeout` would kill a long COPY or index build, and an
 * `idle_in_transaction_session_timeout` the copy sessions that hold the
 * snapshot between tables. And `row_security = off`, as pg_dump does: a read
 * that row-level security would filter fails instead of silently copying (and
 * verifying) fewer rows. And `extra_float_digits = 3`, as pg_dump does: a
 * server before 12 prints a float with 15 digits otherwise, so a table copied
 * as text (one with an extension type, an unlogged table at cutover) would
 * lose precision; from 12 on every float prints exactly anyway.
 */
export const SESSION_OPTIONS =
  '-c statement_timeout=0 -c lock_timeout=0 -c idle_in_transaction_session_timeout=0 -c row_security=off -c extra_float_digits=3';

export function clientConfig(info: ConnInfo, extra: Partial<pg.ClientConfig> = {}): pg.ClientConfig {
  return {
    host: info.host,
    port: info.port,
    user: info.user,
    password: info.password,
    database: info.database,
    ssl: sslConfig(info),
    application_name: 'pgferry',
    connectionTimeoutMillis: 15_000,
    ...extra,
    options: [SESSION_OPTIONS, extra.options].filter((o) => o).join(' '),
  };
}

/**
 * `options` without the `-c name=value` a server refused as an unrecognized
 * configuration parameter, or null when the error is something else. Pure.
 */
export function withoutUnknownSetting(options: string, error: string): string | null {
  const name = /unrecognized configuration parameter "([a-z_]+)"/i.exec(error)?.[1];
  if (!name) return null;
  const next = options
    .replace(new RegExp(`-c ${name}=\\S*`), '')
    .replace(/\s+/g, ' ')
    .trim();
  return next === options ? null : next;
}

/**
 * Open a client. With sslmode=prefer (libpq's default) SSL is tried first and
 * plain TCP second, as libpq does. Connection failures become PgferryErrors
 * that say what to fix, with the password removed.
 */
export async function connect(info: ConnInfo, label: string, extra: Partial<pg.ClientConfig> = {}): Promise<pg.Client> {
  const attempt = async (cfg: pg.ClientConfig): Promise<pg.Client> => {
    // A server older than one of SESSION_OPTIONS (9.4 has no row_security, 9.4–9.5 no
    // idle_in_transaction_session_timeout) refuses the connection: connect again without it.
    for (let options = cfg.options ?? ''; ;) {
      const c = new pg.Client({ ...cfg, options });
      c.on('error', () => undefined); // surfaced by the query that fails
      try {
        await c.connect();
        return c;
      } catch (e) {
        const without = withoutUnknownSetting(options, (e as Error).message ?? '');
        if (without === null) throw e;
        options = without;
      }
    }
  };
  try {
    return await attempt(clientConfig(info, extra));
  } catch (e) {
    const msg = (e as Error).message ?? String(e);
    if (info.sslmode === 'prefer' && /does not support SSL/i.test(msg)) {
      try {
        return await attempt({ ...clientConfig(info, extra), ssl: false });
      } catch (e2) {
        throw connectionError(e2, info, label);
      }
    }
    throw connectionError(e, info, label);
  }
}

/** Translate a connection failure into an error that names the fix. */
export function connectionError(e: unknown, info: ConnInfo, label: string): PgferryError {
  const err = e as { code?: string; message?: string };
  const where = `${label} ${describe(info)}`;
  const msg = redact(err.message ?? String(e));
  switch (err.code) {
    case '28P01':
    case '28000':
      return new PgferryError(
        'auth-failed',
        `Authentication failed for user "${info.user}" on the ${where}`,
        'Check the user and password in the URL (percent-encode special characters) and that pg_hba.conf admits this client.',
      );
    case '3D000':
      return new PgferryError(
        'no-database',
        `Database "${info.database}" does not exist on the ${where}`,
        `Create it first (CREATE DATABASE "${info.database}") or fix the database name in the URL.`,
      );
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ETIMEDOUT':
      return new PgferryError(
        'unreachable',
        `Cannot reach the ${where}: ${msg}`,
        'Check host and port, that the server is running, and that security groups / firewalls admit this machine.',
      );
    default:
      if (/timeout/i.test(msg)) {
        return new PgferryError(
          'unreachable',
          `Timed out connecting to the ${where}`,
          'Check host and port, and that security groups / firewalls admit this machine.',
        );
      }
      return new PgferryError('connect-failed', `Cannot connect to the ${where}: ${msg}`, 'Check the URL and the server log.');
  }
}

/** Run `fn` with a connected client, always closing it. */
export async function withClient<T>(info: ConnInfo, label: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = await connect(info, label);
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** Quote an identifier for SQL. */
export function ident(name: string): string {
  return '"' + name.replace(/"/g, '""') + '"';
}

/** Quote a literal for SQL. */
export function literal(value: string): string {
  return "'" + value.replace(/'/g, "''") + "'";
}
