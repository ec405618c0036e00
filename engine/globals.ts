/**
 * Roles and their memberships (pg_dumpall --globals-only), applied the way
 * seeds 000/001 do by hand but without the guesswork: the target's managed
 * admin role is never altered (its password stays the provider's), roles that
 * already exist are not re-created, attributes a non-superuser may not grant
 * are dropped with a warning, and every outcome is counted.
 */
import type pg from 'pg';
import { redact, withClient, type ConnInfo } from './conn';
import { PgrelocateError } from './errors';
import { opt } from './option-names';
import type { Preflight } from './preflight';
import type { Emit } from './runner';
import { splitSql } from './sql-split';
import { errorLines, libpqUrl, runTool } from './tool-exec';
import type { ClientTools } from './tools';

export interface GlobalsTarget {
  /** The role pgrelocate connects to the target as (the managed admin). */
  readonly admin: string;
  readonly isSuperuser: boolean;
  readonly existingRoles: ReadonlySet<string>;
}

export interface PlannedStatement {
  readonly sql: string;
  readonly action: 'run' | 'skip';
  readonly reason?: string;
}

/** Roles created and owned by managed services; never touched on a target. */
export const MANAGED_ROLE = /^(rds|rdsadmin|rdsrepladmin|rdstopmgr|azure_|azuresu|cloudsql|alloydb|aiven|heroku|supabase_|pg_)/i;

const ROLE_STMT = /^(CREATE|ALTER)\s+ROLE\s+("(?:[^"]|"")+"|[A-Za-z_][\w$]*)(.*)$/is;

export function unquote(name: string): string {
  return name.startsWith('"') ? name.slice(1, -1).replace(/""/g, '"') : name.toLowerCase();
}

/** Attributes only a superuser may grant (in `ALTER ROLE x WITH …`). */
const SUPER_ONLY = /\b(?:NO)?(?:SUPERUSER|REPLICATION|BYPASSRLS)\b/gi;

export function planGlobals(script: string, target: GlobalsTarget): PlannedStatement[] {
  const out: PlannedStatement[] = [];
  for (const sql of splitSql(script)) {
    if (/^SET\s/i.test(sql)) {
      out.push({ sql, action: 'run' });
      continue;
    }
    if (/^CREATE\s+TABLESPACE\b/i.test(sql) || /^ALTER\s+TABLESPACE\b/i.test(sql)) {
      out.push({ sql, action: 'skip', reason: 'tablespaces are not migrated' });
      continue;
    }
    const m = ROLE_STMT.exec(sql);
    if (m) {
      const verb = (m[1] ?? '').toUpperCase();
      const role = unquote(m[2] ?? '');
      const rest = m[3] ?? '';
      if (role === target.admin) {
        out.push({ sql, action: 'skip', reason: "the target's admin role keeps its own password and attributes" });
        continue;
      }
      if (MANAGED_ROLE.test(role)) {
        out.push({ sql, action: 'skip', reason: 'role of a managed service' });
        continue;
      }
      if (verb === 'CREATE' && target.existingRoles.has(role)) {
        out.push({ sql, action: 'skip', reason: 'role already exists on the target' });
        continue;
      }
      const dropped = /^\s+WITH\b/i.test(rest) ? (rest.match(SUPER_ONLY) ?? []) : [];
      if (verb === 'ALTER' && !target.isSuperuser && dropped.length > 0) {
        const cleaned = `ALTER ROLE ${m[2]}${rest.replace(SUPER_ONLY, '').replace(/[ \t]+/g, ' ')}`;
        const names = [...new Set(dropped.map((x) => x.toUpperCase()))];
        out.push({ sql: cleaned, action: 'run', reason: `dropped ${names.join(', ')}: only a superuser may grant them` });
        continue;
      }
    }
    out.push({ sql, action: 'run' });
  }
  return out;
}

export interface GlobalsOutcome {
  applied: number;
  readonly skipped: { readonly sql: string; readonly reason: string }[];
  readonly expected: { readonly sql: string; readonly error: string }[];
  readonly warnings: { readonly sql: string; readonly error: string }[];
  readonly failed: { readonly sql: string; readonly error: string }[];
}

/** Apply planned statements one by one; classify failures by SQLSTATE. */
export async function applyGlobals(c: pg.Client, plan: readonly PlannedStatement[]): Promise<GlobalsOutcome> {
  const out: GlobalsOutcome = { applied: 0, skipped: [], expected: [], warnings: [], failed: [] };
  for (const st of plan) {
    const shown = redact(st.sql);
    if (st.action === 'skip') {
      out.skipped.push({ sql: shown, reason: st.reason ?? '' });
      continue;
    }
    if (st.reason) out.warnings.push({ sql: shown, error: st.reason });
    try {
      await c.query(st.sql);
      out.applied++;
    } catch (e) {
      const err = e as { code?: string; message?: string };
      const msg = redact(err.message ?? String(e));
      if (err.code === '42710') out.expected.push({ sql: shown, error: msg });
      else if (err.code === '42501' || err.code === '42704' || err.code === '0LP01') out.warnings.push({ sql: shown, error: msg });
      else out.failed.push({ sql: shown, error: msg });
    }
  }
  return out;
}

/** What the globals step needs: both endpoints, their inventories and the client tools. */
export interface GlobalsInput {
  readonly source: ConnInfo;
  readonly target: ConnInfo;
  readonly pre: Preflight;
  readonly tools: ClientTools;
  readonly skip: boolean;
}

/** Roles and memberships from the source onto the target (shared by every strategy). */
export async function migrateGlobals(ctx: GlobalsInput, emit: Emit): Promise<Record<string, unknown>> {
  if (ctx.skip) return { skipped: '--skip-globals' };
  if (!ctx.pre.target.server.canCreateRole) {
    emit({ type: 'log', level: 'warn', message: 'roles skipped: the target user cannot create roles' });
    return { skipped: 'the target user cannot create roles' };
  }
  const base = ['--globals-only', '--no-tablespaces', '-d', libpqUrl(ctx.source)];
  let r = await runTool(ctx.tools.pgDumpAll, base, [ctx.source], { captureStdout: true });
  let passwords = true;
  if (r.exitCode !== 0 && /pg_authid|permission denied/i.test(r.stderr)) {
    // Managed sources (RDS, Cloud SQL) do not let anyone read password hashes.
    r = await runTool(ctx.tools.pgDumpAll, ['--no-role-passwords', ...base], [ctx.source], { captureStdout: true });
    passwords = false;
    emit({
      type: 'log',
      level: 'warn',
      message: 'the source does not expose role passwords: roles are created without them; set passwords on the target before the switch',
    });
  }
  if (r.exitCode !== 0) {
    throw new PgrelocateError(
      'globals-failed',
      `pg_dumpall --globals-only failed: ${errorLines(r.stderr)}`,
      `Connect to the source as a superuser or the managed admin user, or pass ${opt('skipGlobals')} and create the roles yourself.`,
    );
  }
  const outcome = await withClient(ctx.target, 'target', async (c) => {
    // 16+: a role a non-superuser creates comes with ADMIN only; without SET and INHERIT the migration
    // role could neither hand objects to it (ALTER … OWNER TO) nor write into its tables.
    if (!ctx.pre.target.server.isSuperuser && ctx.pre.target.server.major >= 16)
      await c.query(`SET createrole_self_grant = 'set, inherit'`);
    const roles = await c.query<{ rolname: string }>('SELECT rolname FROM pg_roles');
    const plan = planGlobals(r.stdout, {
      admin: ctx.pre.target.server.currentUser,
      isSuperuser: ctx.pre.target.server.isSuperuser,
      existingRoles: new Set(roles.rows.map((x) => x.rolname)),
    });
    return applyGlobals(c, plan);
  });
  for (const w of outcome.warnings) emit({ type: 'log', level: 'warn', message: `roles: ${w.error} (${w.sql.slice(0, 120)})` });
  if (outcome.failed.length > 0) {
    throw new PgrelocateError(
      'globals-failed',
      `${outcome.failed.length} role statements failed on the target: ${outcome.failed
        .slice(0, 5)
        .map((f) => `${f.error} [${f.sql.slice(0, 160)}]`)
        .join('; ')}`,
      `Fix the roles on the target (or pass ${opt('skipGlobals')} and create them yourself), then rerun.`,
      outcome,
    );
  }
  return {
    applied: outcome.applied,
    skipped: outcome.skipped.length,
    expectedErrors: outcome.expected.length,
    warnings: outcome.warnings.length,
    passwords,
  };
}
