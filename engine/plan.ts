/**
 * `plan`: pick a strategy from what preflight found and list the steps a run
 * would take. Changes nothing.
 */
import os from 'node:os';
import type { ConnInfo } from './conn';
import { hasErrors, type Finding, type Strategy } from './check';
import { preflight } from './preflight';
import { formatFindings } from './report';
import { formatBytes } from './units';

export interface PlanOptions {
  readonly strategy?: Strategy;
  readonly jobs?: number;
  readonly force?: boolean;
}

export interface Plan {
  readonly ok: boolean;
  readonly strategy: Strategy;
  readonly reason: string;
  readonly steps: readonly { readonly name: string; readonly what: string }[];
  readonly sourceBytes: number;
  readonly tableBytes: number;
  readonly tables: number;
  readonly largestTables: readonly { readonly table: string; readonly bytes: number }[];
  readonly findings: readonly Finding[];
  readonly text: string;
}

/** Why a strategy is chosen. Pure. Only dump-restore exists in this version. */
export function chooseStrategy(requested: Strategy | undefined): { strategy: Strategy; reason: string } {
  if (requested) return { strategy: requested, reason: 'requested with --strategy' };
  return { strategy: 'dump-restore', reason: 'the only strategy available in this version (downtime = the whole run)' };
}

export function dumpRestoreSteps(jobs: number): { name: string; what: string }[] {
  return [
    { name: 'globals', what: 'roles and memberships (pg_dumpall --globals-only), the target admin role left untouched' },
    { name: 'dump', what: `pg_dump -Fd -j ${jobs} of the source database` },
    { name: 'restore', what: `pg_restore -j ${jobs} into the target, errors classified expected / real` },
    { name: 'database-settings', what: 'ALTER DATABASE … SET, per-role settings in the database, its comment and grants' },
    { name: 'vacuum-analyze', what: `VACUUM (ANALYZE) every table, ${jobs} at a time` },
    { name: 'verify', what: 'row counts, primary key ranges, per-table checksums, sequences, large objects' },
  ];
}

export async function plan(source: ConnInfo, target: ConnInfo, opts: PlanOptions = {}): Promise<Plan> {
  const { strategy, reason } = chooseStrategy(opts.strategy);
  const jobs = opts.jobs ?? Math.max(2, os.cpus().length);
  const pre = await preflight(source, target, { strategy, force: opts.force ?? false });
  const tables = pre.source.database.tables;
  const tableBytes = tables.reduce((s, t) => s + t.bytes, 0);
  const steps = dumpRestoreSteps(jobs);
  const largest = tables.slice(0, 5).map((t) => ({ table: `${t.schema}.${t.name}`, bytes: t.totalBytes }));
  const text = [
    `strategy: ${strategy} (${reason})`,
    `source: PostgreSQL ${pre.source.server.major}, database ${pre.source.database.name}: ${formatBytes(pre.source.database.bytes)}, ` +
      `${tables.length} tables (${formatBytes(tableBytes)} of table data), ${pre.source.database.sequences.length} sequences, ` +
      `${pre.source.database.matviews.length} materialized views, ${pre.source.database.largeObjects} large objects`,
    `target: PostgreSQL ${pre.target.server.major}, database ${pre.target.database.name}`,
    'largest tables: ' + largest.map((t) => `${t.table} ${formatBytes(t.bytes)}`).join(', '),
    'steps:',
    ...steps.map((s, i) => `  ${i + 1}. ${s.name.padEnd(15)} ${s.what}`),
    'downtime: writes must stay stopped from the dump to the end of verify; rehearse on a copy to measure it.',
    '',
    formatFindings(pre.findings),
  ].join('\n');
  return {
    ok: !hasErrors(pre.findings),
    strategy,
    reason,
    steps,
    sourceBytes: pre.source.database.bytes,
    tableBytes,
    tables: tables.length,
    largestTables: largest,
    findings: pre.findings,
    text,
  };
}
