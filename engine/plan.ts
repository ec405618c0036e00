/**
 * `plan`: pick a strategy from what preflight found and list the steps a run
 * would take. Changes nothing.
 */
import type { TableFilter } from './filter';
import os from 'node:os';
import type { ConnInfo } from './conn';
import { hasErrors, runChecks, type CheckFacts, type Finding } from './check';
import type { Strategy } from './strategies/names';
import { preflight } from './preflight';
import { describeSteps } from './strategies';
import { formatFindings } from './report';
import { formatBytes, formatDuration } from './units';
import { defaultOf } from './options';

export interface PlanOptions {
  readonly strategy?: Strategy;
  readonly jobs?: number;
  readonly force?: boolean;
  readonly replicaIdentityFull?: boolean;
  /** The cutover's guardrail (seconds), compared with the estimate. */
  readonly maxBlackout?: number;
  /** Which schemas and tables are migrated. */
  readonly filter?: TableFilter;
}

/** What the cutover does inside its fence that grows with the database: what the estimate reads. */
export interface FenceWork {
  /** Bucardo's final sync is two sync runs rather than an LSN to wait for. */
  readonly bucardo?: boolean;
  readonly tables: number;
  readonly sequences: number;
  /** Key-less tables whose inserts replication carries (pglogical): copied again whole (bytes). */
  readonly copiedBytes: number;
  /** Unlogged tables and key-less ones nothing replicates, copied before the fence: scanned inside it for rows written since (bytes). */
  readonly scannedBytes?: number;
  /** Copied before the fence: checked inside it, copied again only if written since. */
  readonly largeObjects: number;
}

/**
 * Rates measured on this project's 2-core machine (PostgreSQL 17, local):
 * locking plus the final LSN plus the commit about 0.2 s with a target
 * keeping up under 200 writes/s (`npm run bench -- cutover`: 0.24–0.26 s
 * from 100 MB to 4.3 GB); Bucardo's final sync is two sync runs, taken as
 * 1 s (not measured by the bench); the switch's triggers 0.08 ms a table (94 ms
 * for 1,000 tables, 390 ms for 5,000, lock included); sequences one batched
 * query; a whole-table COPY through pgrelocate ~60 MB/s; the scan for rows
 * written since the pre-copy ~2 GB/s cached (500 MB/s taken, for a disk); the
 * check of 10,000 large objects 0.5 s (1.0 s where their md5 is computed).
 * What was written since the pre-copy is copied again on top: not known ahead.
 */
const RATES = {
  base: 0.2,
  bucardoRuns: 1,
  perTable: 0.0001,
  sequences: 0.02,
  perSequence: 0.00005,
  bytesPerSecond: 60e6,
  scanBytesPerSecond: 500e6,
  perLargeObject: 0.0001,
};

/** The expected write-blackout of a streaming cutover, with what it is made of. Pure. */
export function estimateBlackout(w: FenceWork): { seconds: number; parts: { what: string; seconds: number }[] } {
  const parts = [
    { what: 'lock, final LSN, commit', seconds: RATES.base },
    { what: 'two Bucardo sync runs (estimated: rehearse)', seconds: w.bucardo ? RATES.bucardoRuns : 0 },
    { what: `triggers on ${w.tables} tables`, seconds: w.tables * RATES.perTable },
    { what: `${w.sequences} sequences`, seconds: w.sequences ? RATES.sequences + w.sequences * RATES.perSequence : 0 },
    { what: `${formatBytes(w.copiedBytes)} copied again whole`, seconds: w.copiedBytes / RATES.bytesPerSecond },
    {
      what: `${formatBytes(w.scannedBytes ?? 0)} scanned for rows written since the pre-copy`,
      seconds: (w.scannedBytes ?? 0) / RATES.scanBytesPerSecond,
    },
    { what: `${w.largeObjects} large objects checked`, seconds: w.largeObjects * RATES.perLargeObject },
  ].filter((p) => p.seconds > 0);
  return { seconds: parts.reduce((t, p) => t + p.seconds, 0), parts };
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
  /** Streaming strategies: the cutover's expected write-blackout (writers wait meanwhile). */
  readonly expectedBlackoutSeconds: number | null;
  readonly text: string;
}

/**
 * Pick a strategy: `logical` (seconds of downtime) when its checks pass, else
 * `pglogical` when the extension is usable on both sides (9.4–9.6 sources,
 * or native replication not allowed), else `bucardo` when the source role
 * may not replicate at all (Heroku), otherwise `dump-restore` (downtime =
 * the whole run), saying why. Pure.
 */
export interface StrategyChoice {
  readonly strategy: Strategy;
  readonly reason: string;
  /**
   * Set when dump-restore was chosen because no streaming strategy is
   * possible: what blocks logical replication, each with its fix. A command
   * that was not asked for dump-restore refuses then rather than start a
   * full-downtime run.
   */
  readonly streamingBlockers?: readonly Finding[];
}

export function chooseStrategy(requested: Strategy | undefined, facts?: CheckFacts): StrategyChoice {
  if (requested) return { strategy: requested, reason: 'requested with --strategy' };
  if (!facts) return { strategy: 'dump-restore', reason: 'no inventory to judge logical replication by', streamingBlockers: [] };
  const blockers = runChecks({ ...facts, strategy: 'logical' }).filter((f) => f.level === 'error');
  if (blockers.length === 0)
    return { strategy: 'logical', reason: 'the source allows logical replication: copy, stream, cut over in seconds' };
  const general = new Set(
    runChecks({ ...facts, strategy: 'dump-restore' })
      .filter((f) => f.level === 'error')
      .map((f) => f.code),
  );
  const specific = blockers.filter((b) => !general.has(b.code));
  const pglogicalBlockers = runChecks({ ...facts, strategy: 'pglogical' }).filter((f) => f.level === 'error');
  if (pglogicalBlockers.length === 0)
    return {
      strategy: 'pglogical',
      reason: `native logical replication is not possible here (${specific.map((b) => b.message).join(' ') || 'see findings'}), pglogical is: copy, stream, cut over in seconds`,
    };
  if (!facts.source.server.canReplicate)
    return {
      strategy: 'bucardo',
      reason: `user "${facts.source.server.currentUser}" may not replicate from the source (no superuser, REPLICATION, rds_replication or rds_superuser: a Heroku-like service), so Bucardo's triggers carry the changes; cutover in seconds`,
    };
  return {
    strategy: 'dump-restore',
    reason: `logical replication is not possible here (${specific.map((b) => b.message).join(' ') || 'see findings'}); dump-restore needs writes stopped for the whole run`,
    streamingBlockers: specific.length > 0 ? specific : blockers,
  };
}

/** dump-restore's steps, from the steps themselves. Pure. */
export function dumpRestoreSteps(jobs: number): { name: string; what: string }[] {
  return describeSteps('dump-restore', { jobs });
}

export async function plan(source: ConnInfo, target: ConnInfo, opts: PlanOptions = {}): Promise<Plan> {
  const jobs = opts.jobs ?? Math.max(2, os.cpus().length);
  const first = await preflight(source, target, {
    strategy: opts.strategy ?? 'logical',
    force: opts.force ?? false,
    replicaIdentityFull: opts.replicaIdentityFull ?? false,
    ...(opts.filter ? { filter: opts.filter } : {}),
  });
  const { strategy, reason } = chooseStrategy(opts.strategy, first.facts);
  const findings = runChecks({ ...first.facts, strategy });
  const pre = { ...first, findings };
  const tables = pre.source.database.tables;
  const tableBytes = tables.reduce((s, t) => s + t.bytes, 0);
  const steps = describeSteps(strategy, { jobs });
  const width = Math.max(...steps.map((s) => s.name.length));
  const largest = tables.slice(0, 5).map((t) => ({ table: `${t.schema}.${t.name}`, bytes: t.totalBytes }));
  // What pglogical (insert-only) and Bucardo (full copy) copy again: tables without a primary key.
  const keyless = (t: (typeof tables)[number]): boolean => t.kind === 'r' && t.primaryKey.length === 0;
  const blackout =
    strategy === 'dump-restore'
      ? null
      : estimateBlackout({
          bucardo: strategy === 'bucardo',
          tables: tables.filter((t) => t.kind === 'r').length,
          sequences: pre.source.database.sequences.length,
          // pglogical replicates a key-less table's inserts only: copied again whole, inside the fence.
          copiedBytes: strategy === 'pglogical' ? tables.filter((t) => !t.unlogged && keyless(t)).reduce((sum, t) => sum + t.bytes, 0) : 0,
          // Unlogged tables carry no WAL, and Bucardo cannot track a key-less table: copied before the fence, scanned inside it.
          scannedBytes: tables.filter((t) => t.unlogged || (strategy === 'bucardo' && keyless(t))).reduce((sum, t) => sum + t.bytes, 0),
          largeObjects: pre.source.database.largeObjects,
        });
  const guard = opts.maxBlackout ?? defaultOf('maxBlackout');
  const text = [
    `strategy: ${strategy} (${reason})`,
    `source: PostgreSQL ${pre.source.server.major}, database ${pre.source.database.name}: ${formatBytes(pre.source.database.bytes)}, ` +
      `${tables.length} tables (${formatBytes(tableBytes)} of table data), ${pre.source.database.sequences.length} sequences, ` +
      `${pre.source.database.matviews.length} materialized views, ${pre.source.database.largeObjects} large objects`,
    `target: PostgreSQL ${pre.target.server.major}, database ${pre.target.database.name}`,
    'largest tables: ' + largest.map((t) => `${t.table} ${formatBytes(t.bytes)}`).join(', '),
    'steps:',
    ...steps.map((s, i) => `  ${i + 1}. ${s.name.padEnd(width)}  ${s.what}`),
    blackout
      ? `downtime: the cutover's write fence, expected ${formatDuration(blackout.seconds)} (${blackout.parts.map((p) => `${p.what} ${formatDuration(p.seconds)}`).join(', ')}); writers wait meanwhile, and past --max-blackout ${guard}s it rolls itself back${blackout.seconds > guard / 2 ? ' — the estimate is over half of that: raise --max-blackout, or add primary keys to the large key-less tables' : ''}. Rehearse to measure it.`
      : 'downtime: writes must stay stopped from the dump to the end of verify; rehearse on a copy to measure it.',
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
    expectedBlackoutSeconds: blackout?.seconds ?? null,
    text,
  };
}

/**
 * The refusal of a command that was not asked for dump-restore when only
 * dump-restore is possible: each reason with its fix, then the way to accept
 * the downtime. Pure.
 */
export function onlyDumpRestoreText(blockers: readonly Finding[], command: string): string {
  return [
    'Logical replication is not possible here, so no strategy can keep the source writable during the move:',
    ...blockers.map((b) => `  - ${b.message}${b.fix ? `\n    fix: ${b.fix}` : ''}`),
    `Only dump-restore remains: writes must stop for the whole run. Fix the above, or accept that with: pgrelocate ${command} --strategy dump-restore`,
  ].join('\n');
}
