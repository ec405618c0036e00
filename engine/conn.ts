/**
 * Connection strings: parsing, redaction and the two shapes the engine needs —
 * a node-postgres client config, and a libpq URL without its password for the
 * client tools (the password travels through a private passfile instead).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { isPgrelocateError, PgrelocateError } from './errors';

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

/** The libpq environment variables and files that fill what a URL leaves out. */
export interface LibpqEnv {
  readonly env?: NodeJS.ProcessEnv;
  /** The OS user name (libpq's default user). */
  readonly osUser?: string;
}

/**
 * Parse a `postgres://` or `postgresql://` URL as libpq reads it: what the URL
 * leaves out comes from PGHOST, PGPORT, PGUSER, PGDATABASE, PGSSLMODE,
 * PGPASSWORD and the passfile (PGPASSFILE or ~/.pgpass), then libpq's
 * defaults (sslmode `prefer`, the OS user, a database named like the user).
 * Errors never repeat the URL: a typo can put the password anywhere in it.
 */
export function parseUrl(url: string, label = 'connection URL', libpq: LibpqEnv = {}): ConnInfo {
  const env = libpq.env ?? process.env;
  // Passwords are best kept out of URLs (shell history, ps): the fix names the places libpq reads them from.
  const form =
    'Use the form postgresql://USER@HOST:PORT/DATABASE, with the password in PGPASSWORD or ~/.pgpass (or percent-encoded after USER: in the URL).';
  // `postgresql:/h` and `postgresql:h` parse as URLs whose path holds the rest, password included.
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  if (scheme !== undefined && scheme !== 'postgres' && scheme !== 'postgresql') {
    throw new PgrelocateError('bad-url', `The ${label} must start with postgresql:// (got ${scheme}://)`, form);
  }
  if (scheme === undefined || !/^[a-z]+:\/\//i.test(url)) {
    throw new PgrelocateError('bad-url', `The ${label} is not a postgresql:// URL (it needs two slashes after the scheme)`, form);
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new PgrelocateError('bad-url', `The ${label} is not a valid URL`, form);
  }
  const params: Record<string, string> = {};
  const query: Record<string, string> = {};
  for (const [k, v] of u.searchParams) {
    if (['sslmode', 'password', 'host', 'port', 'user', 'dbname'].includes(k)) query[k] = v;
    else params[k] = v;
  }
  const sslmode = query['sslmode'] ?? env['PGSSLMODE'] ?? 'prefer';
  if (!SSL_MODES.includes(sslmode as SslMode)) {
    throw new PgrelocateError('bad-url', `Unknown sslmode "${sslmode}" in the ${label}`, `Use one of ${SSL_MODES.join(', ')}.`);
  }
  const portText = u.port || query['port'] || env['PGPORT'] || '5432';
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new PgrelocateError('bad-url', `The port in the ${label} is not a number from 1 to 65535`, form);
  }
  const user = decodeURIComponent(u.username) || query['user'] || env['PGUSER'] || libpq.osUser || os.userInfo().username;
  const database = decodeURIComponent(u.pathname.replace(/^\//, '')) || query['dbname'] || env['PGDATABASE'] || user;
  const host = (u.hostname.replace(/^\[(.*)\]$/, '$1') || query['host'] || env['PGHOST'] || 'localhost').trim();
  const fromUrl = u.password ? decodeURIComponent(u.password) : query['password'];
  const info = { host, port, user, database, sslmode: sslmode as SslMode, params };
  // An empty password counts as none, as in libpq.
  const password = fromUrl || env['PGPASSWORD'] || passwordFromPassfile(info, env);
  return { ...info, password };
}

/**
 * The password libpq's passfile gives an endpoint: PGPASSFILE or ~/.pgpass,
 * ignored (as libpq does) when others can read it.
 */
function passwordFromPassfile(info: Omit<ConnInfo, 'password'>, env: NodeJS.ProcessEnv): string | undefined {
  const home = env['HOME'] || os.homedir();
  const file = env['PGPASSFILE'] || (home ? path.join(home, '.pgpass') : undefined);
  if (!file) return undefined;
  try {
    const st = statSync(file);
    if (!st.isFile() || (st.mode & 0o077) !== 0) return undefined;
    return passfileLookup(readFileSync(file, 'utf8'), info);
  } catch {
    return undefined;
  }
}

/** The first passfile line that matches host, port, database and user (`*` matches anything). Pure. */
export function passfileLookup(text: string, info: Pick<ConnInfo, 'host' | 'port' | 'database' | 'user'>): string | undefined {
  const want = [info.host, String(info.port), info.database, info.user];
  for (const line of text.split(/\r?\n/)) {
    if (!line.trim() || line.startsWith('#')) continue;
    const fields: string[] = [];
    let cur = '';
    for (let i = 0; i < line.length; i++) {
      const ch = line[i]!;
      if (ch === '\\' && i + 1 < line.length) cur += line[++i];
      else if (ch === ':' && fields.length < 4) {
        fields.push(cur);
        cur = '';
      } else cur += ch;
    }
    fields.push(cur);
    if (fields.length < 5) continue;
    // libpq: "localhost" in the file also matches a Unix-socket connection.
    const hostOk = (f: string): boolean => f === '*' || f === want[0] || (f === 'localhost' && want[0]!.startsWith('/'));
    if (hostOk(fields[0]!) && want.slice(1).every((w, i) => fields[i + 1] === '*' || fields[i + 1] === w)) return fields[4];
  }
  return undefined;
}

/** The same endpoint, another database. */
export function withDatabase(info: ConnInfo, database: string): ConnInfo {
  return { ...info, database };
}

/** Build a URL from parts; the password is included only when asked. */
export function toUrl(info: ConnInfo, opts: { password?: boolean } = {}): string {
  const withPassword = opts.password && info.password !== undefined;
  const q = new URLSearchParams(info.params);
  if (info.sslmode !== 'prefer') q.set('sslmode', info.sslmode);
  const db = encodeURIComponent(info.database);
  if (info.host.startsWith('/')) {
    // A Unix-socket directory cannot stand in the authority part: libpq takes it as ?host=.
    const head = new URLSearchParams({ host: info.host, port: String(info.port), user: info.user });
    if (withPassword) head.set('password', info.password!);
    const qs = [head.toString(), q.toString()].filter((x) => x).join('&');
    return `postgresql:///${db}?${qs}`;
  }
  const auth = encodeURIComponent(info.user) + (withPassword ? ':' + encodeURIComponent(info.password!) : '');
  const host = info.host.includes(':') ? `[${info.host}]` : info.host;
  const qs = q.toString();
  return `postgresql://${auth}@${host}:${info.port}/${db}${qs ? '?' + qs : ''}`;
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

/** libpq's default root certificate: ~/.postgresql/root.crt. */
function defaultRootCert(): string | undefined {
  const f = path.join(os.homedir(), '.postgresql', 'root.crt');
  return existsSync(f) ? f : undefined;
}

/**
 * TLS settings as libpq applies each sslmode: `prefer` and `require` encrypt
 * without checking the certificate (`require` checks the chain when a root
 * certificate is given, as libpq does); `verify-ca` checks the chain;
 * `verify-full` the chain and the host name. `sslrootcert=system` trusts the
 * system's CAs. `allow` and `prefer` fall back in `connect()`.
 */
export function sslConfig(info: ConnInfo, rootCert: () => string | undefined = defaultRootCert): pg.ClientConfig['ssl'] {
  const rootParam = info.params['sslrootcert'];
  const clientCert = {
    ...(info.params['sslcert'] ? { cert: readFileSync(info.params['sslcert'], 'utf8') } : {}),
    ...(info.params['sslkey'] ? { key: readFileSync(info.params['sslkey'], 'utf8') } : {}),
  };
  const verify = (full: boolean, root: string | undefined): pg.ClientConfig['ssl'] => ({
    rejectUnauthorized: true,
    ...(root && root !== 'system' ? { ca: readFileSync(root, 'utf8') } : {}),
    ...(full ? {} : { checkServerIdentity: () => undefined }),
    ...clientCert,
  });
  switch (info.sslmode) {
    case 'disable':
    case 'allow':
      return false;
    case 'prefer':
      return { rejectUnauthorized: false, ...clientCert };
    case 'require':
      return rootParam ? verify(false, rootParam) : { rejectUnauthorized: false, ...clientCert };
    case 'verify-ca':
    case 'verify-full': {
      const root = rootParam ?? rootCert();
      if (!root) {
        throw new PgrelocateError(
          'bad-url',
          `sslmode=${info.sslmode} needs a root certificate to check the server against, and none was given`,
          'Add sslrootcert=/path/to/ca.pem to the URL (sslrootcert=system for the system CAs), or put the CA in ~/.postgresql/root.crt.',
        );
      }
      return verify(info.sslmode === 'verify-full', root);
    }
  }
}

/** node-postgres client config for an endpoint. */
/**
 * Every pgrelocate session turns off the server's or role's timeouts, as pg_dump
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
    application_name: 'pgrelocate',
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
 * plain TCP second, as libpq does. Connection failures become PgrelocateErrors
 * that say what to fix, with the password removed.
 */
export async function connect(info: ConnInfo, label: string, extra: Partial<pg.ClientConfig> = {}): Promise<pg.Client> {
  try {
    return await openClient(info, extra);
  } catch (e) {
    throw isPgrelocateError(e) ? e : connectionError(e, info, label);
  }
}

/**
 * Close a client's socket at once. A COPY cut off on one side leaves the other
 * session mid-protocol with data unread: a query sent after it, or end()'s
 * goodbye, would wait behind that data for ever. The server rolls back what
 * the session had open.
 */
export function dropConnection(c: pg.Client): void {
  (c as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}

/**
 * Open a client with libpq's sslmode fallbacks, throwing the driver's own
 * error (for callers that classify it themselves, such as the write load).
 */
export async function openClient(info: ConnInfo, extra: Partial<pg.ClientConfig> = {}): Promise<pg.Client> {
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
  const cfg = clientConfig(info, extra);
  const known = fellBack.get(info);
  if (known !== undefined) return attempt({ ...cfg, ssl: known });
  try {
    return await attempt(cfg);
  } catch (e) {
    const fallback = sslFallback(info.sslmode, e);
    if (fallback === null) throw e;
    const c = await attempt({ ...cfg, ssl: fallback });
    fellBack.set(info, fallback);
    return c;
  }
}

/**
 * The second try that worked, per endpoint object: libpq goes on in plain TCP
 * on the socket a server without TLS answered, but node-postgres closes it, so
 * each session would pay a second connection (two round trips more, a run
 * opens a dozen). Kept by object, so a test's new server on a reused port is
 * tried afresh; a run passes its endpoints around as they were parsed.
 */
const fellBack = new WeakMap<ConnInfo, pg.ClientConfig['ssl']>();

/**
 * libpq's second try: `prefer` connects without TLS when the server has none;
 * `allow` connects with TLS when pg_hba.conf refused the plain connection
 * (hostssl). null when there is no second try. Pure.
 */
export function sslFallback(mode: SslMode, e: unknown): pg.ClientConfig['ssl'] | null {
  const msg = (e as Error)?.message ?? '';
  if (mode === 'prefer' && /does not support SSL/i.test(msg)) return false;
  if (mode === 'allow' && /no encryption/i.test(msg)) return { rejectUnauthorized: false };
  return null;
}

/** Translate a connection failure into an error that names the fix. */
export function connectionError(e: unknown, info: ConnInfo, label: string): PgrelocateError {
  const err = e as { code?: string; message?: string };
  const where = `${label} ${describe(info)}`;
  const msg = redact(err.message ?? String(e));
  if (info.password === undefined && /password must be a string|no password/i.test(msg)) {
    return new PgrelocateError(
      'auth-failed',
      `The ${where} asks for a password and none was given for user "${info.user}"`,
      'Set PGPASSWORD, add it to ~/.pgpass (mode 0600), or put it percent-encoded after the user in the URL.',
    );
  }
  switch (err.code) {
    case '28P01':
    case '28000':
      return new PgrelocateError(
        'auth-failed',
        `Authentication failed for user "${info.user}" on the ${where}`,
        'Check the user and password in the URL (percent-encode special characters) and that pg_hba.conf admits this client.',
      );
    case '3D000':
      return new PgrelocateError(
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
      return new PgrelocateError(
        'unreachable',
        `Cannot reach the ${where}: ${msg}`,
        'Check host and port, that the server is running, and that security groups / firewalls admit this machine.',
      );
    default:
      if (/timeout/i.test(msg)) {
        return new PgrelocateError(
          'unreachable',
          `Timed out connecting to the ${where}`,
          'Check host and port, and that security groups / firewalls admit this machine.',
        );
      }
      return new PgrelocateError('connect-failed', `Cannot connect to the ${where}: ${msg}`, 'Check the URL and the server log.');
  }
}

/** The server's version as a number (`server_version_num`: 170002 for 17.2), which version-dependent catalog queries test. */
export async function serverVersionNum(c: pg.Client): Promise<number> {
  return Number((await c.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`)).rows[0]!.v);
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

/** Run `setup` on a session just opened (its settings, its snapshot); when that fails the session is closed, not left open. */
export async function orClose<T>(c: pg.Client, setup: () => Promise<T>): Promise<T> {
  try {
    return await setup();
  } catch (e) {
    await c.end().catch(() => undefined);
    throw e;
  }
}

/**
 * Open sessions side by side: each costs several round trips (TCP, TLS,
 * startup, authentication: about 0.1 s over a link of 20 ms), so one after
 * another they add up. All or none: when one fails, those that opened are
 * closed and its error is thrown.
 */
export async function openSessions(opens: readonly (() => Promise<pg.Client>)[]): Promise<pg.Client[]> {
  const opened = await Promise.allSettled(opens.map((open) => open()));
  const failed = opened.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (!failed) return opened.map((o) => (o as PromiseFulfilledResult<pg.Client>).value);
  await Promise.all(opened.map((o) => (o.status === 'fulfilled' ? o.value.end().catch(() => undefined) : undefined)));
  throw failed.reason;
}

/**
 * Queries without parameters sent as one message of the simple protocol: the
 * server runs them in turn and answers in one round trip. node-postgres sends
 * a query only after the last one's answer, so fifteen catalog reads one by
 * one cost fifteen round trips (0.3 s at 20 ms). The batch runs as one
 * implicit transaction, so one failing query fails them all: a read that may
 * fail (a privilege a managed role lacks) goes on its own.
 */
export class QueryBatch {
  private readonly queries: { sql: string; resolve: (rows: pg.QueryResultRow[]) => void }[] = [];

  /** The rows of `sql`, once `run` has sent the batch. */
  add<T extends pg.QueryResultRow>(sql: string): Promise<T[]> {
    return new Promise<T[]>((resolve) => this.queries.push({ sql, resolve: resolve as (rows: pg.QueryResultRow[]) => void }));
  }

  async run(c: pg.Client): Promise<void> {
    if (this.queries.length === 0) return;
    // A newline before each separator: a query may end in a -- comment.
    const r = (await c.query(this.queries.map((q) => q.sql).join('\n;\n'))) as unknown as pg.QueryResult | pg.QueryResult[];
    const results = Array.isArray(r) ? r : [r];
    if (results.length !== this.queries.length)
      throw new Error(`A batch of ${this.queries.length} queries gave ${results.length} results: one held a semicolon of its own.`);
    this.queries.forEach((q, i) => q.resolve(results[i]!.rows));
  }
}

/** Run `fn` on `session` when it is an open client (left open), or on a new one to that endpoint (closed after). */
export async function withSession<T>(session: ConnInfo | pg.Client, label: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  return session instanceof pg.Client ? fn(session) : withClient(session, label, fn);
}

/** Quote an identifier for SQL. */
export function ident(name: string): string {
  return '"' + name.replace(/"/g, '""') + '"';
}

/** Quote a literal for SQL. */
export function literal(value: string): string {
  return "'" + value.replace(/'/g, "''") + "'";
}
