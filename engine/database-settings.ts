/**
 * Database-level properties that neither `pg_dumpall --globals-only` nor a
 * `pg_dump` restored into an existing database carries: `ALTER DATABASE … SET`,
 * `ALTER ROLE … IN DATABASE … SET`, the database's comment and its grants
 * (CONNECT, CREATE, TEMPORARY). Read from the source, applied to the target's
 * database by name; failures on a managed target become warnings.
 */
import type pg from 'pg';
import { ident, literal, QueryBatch, redact, withSession, type ConnInfo } from './conn';
import type { Emit } from './runner';

/** Settings stored as lists, whose value pg_dump writes unquoted (GUC_LIST_QUOTE). */
const LIST_SETTINGS = new Set([
  'search_path',
  'temp_tablespaces',
  'session_preload_libraries',
  'shared_preload_libraries',
  'local_preload_libraries',
]);

/** `name=value` from pg_db_role_setting → the SET clause. Pure. */
export function setClause(entry: string): string {
  const eq = entry.indexOf('=');
  const name = entry.slice(0, eq);
  const value = entry.slice(eq + 1);
  return `SET ${ident(name)} TO ${LIST_SETTINGS.has(name.toLowerCase()) ? value : literal(value)}`;
}

export interface DatabaseProperties {
  readonly settings: readonly { readonly role: string | null; readonly entries: readonly string[] }[];
  readonly comment: string | null;
  readonly grants: readonly { readonly grantee: string | null; readonly privilege: string; readonly grantable: boolean }[];
}

export async function readDatabaseProperties(c: pg.Client): Promise<DatabaseProperties> {
  const b = new QueryBatch();
  const settingsQ = b.add<{ role: string | null; entries: string[] }>(
    `SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END AS role, s.setconfig AS entries
       FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
      WHERE d.datname = current_database() ORDER BY 1 NULLS FIRST`,
  );
  const commentQ = b.add<{ c: string | null }>(
    `SELECT shobj_description(oid, 'pg_database') AS c FROM pg_database WHERE datname = current_database()`,
  );
  const grantsQ = b.add<{ grantee: string | null; privilege: string; grantable: boolean }>(
    `SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END AS grantee, a.privilege_type AS privilege, a.is_grantable AS grantable
       FROM pg_database d CROSS JOIN LATERAL aclexplode(d.datacl) a
      WHERE d.datname = current_database() AND a.grantee <> d.datdba`,
  );
  const explicitAclQ = b.add<{ has: boolean }>(`SELECT datacl IS NOT NULL AS has FROM pg_database WHERE datname = current_database()`);
  await b.run(c);
  const [settings, comment, grants, explicitAcl] = await Promise.all([settingsQ, commentQ, grantsQ, explicitAclQ]);
  return {
    settings,
    comment: comment[0]?.c ?? null,
    // A NULL datacl means the defaults (PUBLIC may CONNECT and TEMPORARY): nothing to copy.
    grants: explicitAcl[0]?.has ? grants : [],
  };
}

/** The statements that give `database` the same properties. Pure. */
export function propertyStatements(database: string, p: DatabaseProperties): string[] {
  const db = ident(database);
  const out: string[] = [];
  for (const s of p.settings) {
    // default_transaction_read_only is a write fence (pgrelocate's, or the user's for a dump), never the target's to keep.
    for (const e of s.entries.filter((x) => !/^default_transaction_read_only=/i.test(x))) {
      out.push(s.role === null ? `ALTER DATABASE ${db} ${setClause(e)}` : `ALTER ROLE ${ident(s.role)} IN DATABASE ${db} ${setClause(e)}`);
    }
  }
  if (p.comment !== null) out.push(`COMMENT ON DATABASE ${db} IS ${literal(p.comment)}`);
  if (p.grants.length > 0) {
    // The source restricts its database explicitly: start from none for PUBLIC, then grant as the source does.
    out.push(`REVOKE ALL ON DATABASE ${db} FROM PUBLIC`);
    for (const g of p.grants) {
      out.push(
        `GRANT ${g.privilege} ON DATABASE ${db} TO ${g.grantee === null ? 'PUBLIC' : ident(g.grantee)}${g.grantable ? ' WITH GRANT OPTION' : ''}`,
      );
    }
  }
  return out;
}

/**
 * Copy the source database's properties (its settings, per-role settings in
 * it, comment, grants) onto the target database. A statement the target
 * refuses is a warning, not a failure: the data is there either way.
 * Either side may be a session the caller has open (a round trip cheaper
 * than a new one) or an endpoint.
 */
export async function applyDatabaseSettings(
  source: ConnInfo | pg.Client,
  target: ConnInfo | pg.Client,
  targetDatabase: string,
  emit: Emit,
): Promise<{ applied: number; warnings: string[] }> {
  const props = await withSession(source, 'source', readDatabaseProperties);
  const statements = propertyStatements(targetDatabase, props);
  const warnings: string[] = [];
  await withSession(target, 'target', async (c) => {
    for (const sql of statements) {
      try {
        await c.query(sql);
      } catch (e) {
        warnings.push(`${redact((e as Error).message)} [${sql}]`);
      }
    }
  });
  for (const w of warnings) emit({ type: 'log', level: 'warn', message: `database settings: ${w}` });
  return { applied: statements.length - warnings.length, warnings };
}
