/**
 * The write fence on the source: `default_transaction_read_only = on` for the
 * database, and for the login roles whose own setting would override the
 * database's, in one transaction; then every other client session of the
 * database terminated, and their exit awaited. Undone exactly: earlier values
 * are recorded and put back.
 */
import type pg from 'pg';
import { ident, literal } from '../conn';
import { PgrelocateError } from '../errors';
import { MANAGED_ROLE } from '../globals';

export interface FenceState {
  readonly database: string;
  /** Earlier database-level value, or null when none was set. */
  readonly databaseValue: string | null;
  readonly roles: readonly { readonly role: string; readonly value: string | null }[];
  readonly terminated: number;
}

const SETTING = 'default_transaction_read_only';

function valueOf(config: readonly string[] | null): string | null {
  const e = (config ?? []).find((x) => x.startsWith(`${SETTING}=`));
  return e ? e.slice(SETTING.length + 1) : null;
}

/**
 * Fence writes. `c` must be a session of the source database whose own
 * transactions stay writable. `spare`: an application_name LIKE pattern of
 * sessions left running (Bucardo's, which must still carry the last changes).
 */
export async function fenceWrites(c: pg.Client, database: string, spare?: string): Promise<FenceState> {
  await c.query(`SET ${SETTING} = off`);
  const db = ident(database);
  const existing = await c.query<{ role: string | null; config: string[] }>(
    `SELECT CASE WHEN setrole = 0 THEN NULL ELSE pg_get_userbyid(setrole) END AS role, setconfig AS config
       FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = $1)`,
    [database],
  );
  const dbValue = valueOf(existing.rows.find((r) => r.role === null)?.config ?? null);
  // Only roles with a setting of their own (for this database or for all) would override the
  // database's; the others need no ALTER ROLE — which a managed service's user often may not run
  // (Heroku: no CREATEROLE; anywhere: a superuser role).
  const overriding = (
    await c.query<{ rolname: string }>(
      `SELECT DISTINCT r.rolname FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
        WHERE s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = $1)) AND r.rolcanlogin
          AND r.rolname <> current_user AND r.rolname !~ '^pg_'
          AND EXISTS (SELECT 1 FROM unnest(s.setconfig) e WHERE e LIKE '${SETTING}=%')
        ORDER BY 1`,
      [database],
    )
  ).rows
    .map((r) => r.rolname)
    .filter((r) => !MANAGED_ROLE.test(r));
  const roles = overriding.map((role) => ({ role, value: valueOf(existing.rows.find((r) => r.role === role)?.config ?? null) }));
  // A session the user may not end would keep writing through the fence (its read-only default is read
  // at connect): refuse before changing anything.
  const unstoppable = await c.query<{ u: string; n: number }>(
    `SELECT a.usename AS u, count(*)::int AS n FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid
      WHERE a.datname = $1 AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
        AND ($2::text IS NULL OR a.application_name NOT LIKE $2)
        AND NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
        AND (r.rolsuper OR NOT (pg_has_role(a.usesysid, 'MEMBER') OR pg_has_role('pg_signal_backend', 'MEMBER')))
      GROUP BY 1 ORDER BY 1`,
    [database, spare ?? null],
  );
  if (unstoppable.rows.length > 0) {
    const who = unstoppable.rows.map((r) => `${r.u} (${r.n})`).join(', ');
    throw new PgrelocateError(
      'fence-blocked',
      `Sessions on the source that user "${(await c.query<{ u: string }>('SELECT current_user AS u')).rows[0]!.u}" may not end are connected: ${who}; nothing was fenced`,
      'Stop those clients first (a --pre-hook can), or GRANT pg_signal_backend to the migration user (superuser sessions need a superuser to end them).',
    );
  }
  // One transaction: all of the fence or none of it (a role it may not alter leaves nothing half-done).
  await c.query('BEGIN');
  try {
    await c.query(`ALTER DATABASE ${db} SET ${SETTING} = on`);
    for (const r of roles) await c.query(`ALTER ROLE ${ident(r.role)} IN DATABASE ${db} SET ${SETTING} = on`);
    await c.query('COMMIT');
  } catch (e) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
  // Two queries: in one, the planner may call pg_terminate_backend before filtering out our own pid.
  const others = await c.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'
        AND ($2::text IS NULL OR application_name NOT LIKE $2)`,
    [database, spare ?? null],
  );
  const pids = others.rows.map((r) => r.pid);
  if (pids.length > 0) await c.query(`SELECT pg_terminate_backend(p) FROM unnest($1::int[]) AS p`, [pids]);
  // Wait for them to be gone, so a commit in flight is either in the WAL before our final LSN or never happened.
  const deadline = Date.now() + 10_000;
  while (pids.length > 0 && Date.now() < deadline) {
    const left = await c.query(`SELECT 1 FROM pg_stat_activity WHERE pid = ANY($1::int[])`, [pids]);
    if (left.rowCount === 0) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  return { database, databaseValue: dbValue, roles, terminated: pids.length };
}

/** Put every setting back as it was. */
export async function unfence(c: pg.Client, s: FenceState): Promise<void> {
  await c.query(`SET ${SETTING} = off`);
  const db = ident(s.database);
  await c.query(
    s.databaseValue === null
      ? `ALTER DATABASE ${db} RESET ${SETTING}`
      : `ALTER DATABASE ${db} SET ${SETTING} = ${literal(s.databaseValue)}`,
  );
  for (const r of s.roles) {
    await c.query(
      r.value === null
        ? `ALTER ROLE ${ident(r.role)} IN DATABASE ${db} RESET ${SETTING}`
        : `ALTER ROLE ${ident(r.role)} IN DATABASE ${db} SET ${SETTING} = ${literal(r.value)}`,
    );
  }
}
