/**
 * Real servers shared across test files: one per major, started on first use.
 * Each test gets fresh databases on them, so tests do not see each other.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { ident, openClient, type ConnInfo } from '../../engine/conn';
import { findServerBinaries } from '../../engine/local/binaries';
import { startServer, type LocalServer } from '../../engine/local/cluster';
import { findClientTools } from '../../engine/tools';
import { loadSample, type SampleResult } from '../../scripts/sample-db';

const servers = new Map<number, Promise<LocalServer>>();

export function server(major: number): Promise<LocalServer> {
  let s = servers.get(major);
  if (!s) {
    s = startServer({ major, name: 'test' });
    servers.set(major, s);
  }
  return s;
}

export function hasServer(major: number): boolean {
  return findServerBinaries(major) !== undefined;
}

/** Newest pg_dump major on this machine (0 when none). */
export async function newestPgDump(): Promise<number> {
  const tools = await findClientTools();
  return tools[0]?.major ?? 0;
}

export async function sql<T extends pg.QueryResultRow = pg.QueryResultRow>(
  conn: ConnInfo,
  text: string,
  params: unknown[] = [],
): Promise<T[]> {
  const c = await openClient(conn);
  try {
    return (await c.query<T>(text, params)).rows;
  } finally {
    await c.end();
  }
}

/** A new empty database on a server. */
export async function freshDatabase(s: LocalServer, prefix = 'db'): Promise<ConnInfo> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  await sql(s.conn(), `CREATE DATABASE ${ident(name)}`);
  return s.conn(name);
}

const samples = new Map<number, Promise<{ conn: ConnInfo; sample: SampleResult }>>();

/** A database holding the small sample, one per source major (read-only for tests). */
export function sampleSource(major: number, sizeBytes = 8e6): Promise<{ conn: ConnInfo; sample: SampleResult }> {
  let p = samples.get(major);
  if (!p) {
    p = (async () => {
      const s = await server(major);
      const conn = await freshDatabase(s, 'sample');
      const sample = await loadSample(conn, { sizeBytes });
      return { conn, sample };
    })();
    samples.set(major, p);
  }
  return p;
}

/** What a database holds, to prove a failed command changed nothing. */
export async function fingerprint(conn: ConnInfo): Promise<string> {
  const rels = await sql<{ r: string }>(
    conn,
    `SELECT string_agg(n.nspname || '.' || c.relname || ':' || c.relkind::text, ',' ORDER BY 1) AS r
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'`,
  );
  const roles = await sql<{ r: string }>(conn, `SELECT string_agg(rolname, ',' ORDER BY rolname) AS r FROM pg_roles`);
  const slots = await sql<{ r: string | null }>(conn, `SELECT string_agg(slot_name, ',') AS r FROM pg_replication_slots`);
  return JSON.stringify([rels[0]?.r, roles[0]?.r, slots[0]?.r]);
}
