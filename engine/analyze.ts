/**
 * Planner statistics on the target. A copied or restored table has none until
 * autovacuum gets to it (a partitioned parent never: autovacuum does not
 * analyze them), and an application pointed at the target meanwhile gets
 * plans made for empty tables. pgrelocate analyzes before it hands over: each
 * table as soon as its indexes are built (post-data pipeline), then whatever
 * still has no statistics (partitioned parents, tables without indexes,
 * materialized views) at the end of a copy and before a cutover's fence.
 */
import pLimit from 'p-limit';
import type pg from 'pg';
import { connect, type ConnInfo } from './conn';
import { SYSTEM_SCHEMA_FILTER } from './inspect';
import { ProgressMeter, type Emit } from './runner';

export interface StatsRelation {
  /** Quoted, schema-qualified name. */
  readonly q: string;
  /** 'r' table, 'p' partitioned table, 'm' materialized view. */
  readonly kind: 'r' | 'p' | 'm';
}

/**
 * Tables, partitioned tables and populated materialized views outside the
 * system schemas, largest first; with `onlyMissing`, those without a row in
 * pg_stats (what ANALYZE writes at once, on every version, unlike the
 * cumulative statistics of 12–14; pg_statistic itself is superuser-only, so
 * not readable on RDS or Heroku). An empty table stays "missing", and costs
 * nothing to analyze again.
 */
export async function relationsToAnalyze(c: pg.Client, onlyMissing: boolean): Promise<StatsRelation[]> {
  const r = await c.query<StatsRelation>(
    `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS q, c.relkind::text AS kind
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p', 'm') AND (c.relkind <> 'm' OR c.relispopulated) AND ${SYSTEM_SCHEMA_FILTER}
        ${onlyMissing ? 'AND NOT EXISTS (SELECT 1 FROM pg_stats s WHERE s.schemaname = n.nspname AND s.tablename = c.relname)' : ''}
      ORDER BY pg_table_size(c.oid) DESC`,
  );
  return r.rows;
}

/** The statement for one relation: a partitioned parent has no storage to vacuum, only statistics. Pure. */
export function analyzeSql(rel: StatsRelation, vacuum: boolean): string {
  return vacuum && rel.kind !== 'p' ? `VACUUM (ANALYZE) ${rel.q}` : `ANALYZE ${rel.q}`;
}

/** Analyze (or vacuum and analyze) `rels` on the target, `jobs` at a time, with progress in tables. */
export async function analyzeRelations(
  target: ConnInfo,
  rels: readonly StatsRelation[],
  opts: { readonly jobs: number; readonly vacuum: boolean; readonly step: string },
  emit: Emit,
): Promise<number> {
  if (rels.length === 0) return 0;
  const meter = new ProgressMeter(emit, opts.step, rels.length, 'tables');
  const clients = await Promise.all(
    Array.from({ length: Math.min(Math.max(1, opts.jobs), rels.length) }, () =>
      connect(target, 'target', { application_name: 'pgrelocate-analyze' }),
    ),
  );
  try {
    const limit = pLimit(clients.length);
    let done = 0;
    await Promise.all(
      rels.map((rel) =>
        limit(async () => {
          const c = clients.pop()!;
          try {
            await c.query(analyzeSql(rel, opts.vacuum));
          } catch (e) {
            // Statistics are not data: a failure here does not stop the migration, it is reported.
            emit({
              type: 'log',
              level: 'warn',
              message: `${analyzeSql(rel, opts.vacuum)} failed (${(e as Error).message}); run it on the target before the application arrives`,
            });
          } finally {
            clients.push(c);
          }
          meter.update(++done, rel.q);
        }),
      ),
    );
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
  return rels.length;
}

/** ANALYZE every relation of the target that has no statistics yet. Returns how many were analyzed. */
export async function analyzeMissing(target: ConnInfo, jobs: number, emit: Emit, step = 'analyze'): Promise<number> {
  const c = await connect(target, 'target');
  let rels: StatsRelation[];
  try {
    rels = await relationsToAnalyze(c, true);
  } finally {
    await c.end().catch(() => undefined);
  }
  return analyzeRelations(target, rels, { jobs, vacuum: false, step }, emit);
}
