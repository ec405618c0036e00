/**
 * Roles and their memberships (pg_dumpall --globals-only), applied the way
 * seeds 000/001 do by hand but without the guesswork: the target's managed
 * admin role is never altered (its password stays the provider's), roles that
 * already exist are not re-created, attributes a non-superuser may not grant
 * are dropped with a warning, and every outcome is counted.
 */
import type pg from 'pg';
import { redact } from './conn';
import { splitSql } from './sql-split';

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
