/** Options of the streaming strategies, and what a run records about its artefacts. */
import { namesFor } from './snapshot';
import os from 'node:os';
import { isFiltered, type TableFilter } from '../filter';
import { type ConnInfo } from '../conn';
import { bytesOf, defaultOf } from '../options';
import { defaultWorkDir, type Preflight } from '../preflight';
import { readRun, type RunRecord } from '../state';
import { isStreaming, type StreamingStrategy } from '../strategies/names';
import { type FenceRecord } from './fence';
import { type PgbouncerTarget } from './pgbouncer';
import type { RollbackMeta } from './rollback';
import { type LogicalNames } from './snapshot';
import type { Together } from './together';

export interface StreamingOptions {
  readonly jobs: number;
  readonly workDir: string;
  /** Allow a non-empty target. */
  readonly force: boolean;
  readonly skipGlobals: boolean;
  /** Tables above this many bytes are copied in ranges; 0 = automatic (see `autoSplitBytes`). */
  readonly splitBytes: number;
  /** Set REPLICA IDENTITY FULL on source tables without a usable key (restored at cleanup). */
  readonly replicaIdentityFull: boolean;
  /** How the target server reaches the source (default: the source URL). */
  readonly sourceForTarget?: ConnInfo;
  /** Cutover starts only when the target is at most this many WAL bytes behind. */
  readonly maxLagBytes: number;
  /** How long sync waits for catch-up, and cutover for the lag gate (seconds). */
  readonly catchUpTimeout: number;
  /** How long cutover waits for the final LSN once writes are fenced (seconds). */
  readonly applyTimeout: number;
  /** The guardrail: the longest the write fence may last before the cutover rolls itself back (seconds). */
  readonly maxBlackout: number;
  readonly verify: 'checksum' | 'count' | 'none';
  /** A preflight the caller already ran on these endpoints (choosing the strategy): reused, its checks re-run, not its queries. */
  readonly preflight?: Preflight;
  readonly preHook?: string;
  readonly postHook?: string;
  /** false: copy once (schema, data, indexes, sequences, large objects) with no slot and no streaming. */
  readonly streaming: boolean;
  /** pglogical: tables added to the replication sets per batch (0 = all at once). */
  readonly batchSize: number;
  /** pglogical: seconds to wait between batches once a batch replicates. */
  readonly batchPause: number;
  /** bucardo: pgrelocate's parallel copy for the first data (after Bucardo's triggers are in), Bucardo for the changes only. */
  readonly bucardoParallelCopy: boolean;
  /** bucardo: a superuser of the PostgreSQL (with PL/Perl) that holds Bucardo's control database. */
  readonly bucardoUrl?: ConnInfo;
  /** logical: arm reverse replication at the switch, for `pgrelocate rollback`. */
  readonly rollback: boolean;
  /** Cut over through PgBouncer: pause, point its entry at the target, resume. */
  readonly pgbouncer?: PgbouncerTarget;
  /** Which schemas and tables the run migrates (default: all); recorded with the run, so later commands use the same. */
  readonly filter?: TableFilter;
  /** cutover: this database is one of several cut over as one (`--all-databases`): they fence and switch together. */
  readonly together?: Together;
}

export function resolveStreamingOptions(o: Partial<StreamingOptions>): StreamingOptions {
  return {
    jobs: Math.max(1, o.jobs ?? Math.max(2, os.cpus().length)),
    workDir: o.workDir ?? defaultWorkDir(),
    force: o.force ?? false,
    skipGlobals: o.skipGlobals ?? false,
    splitBytes: o.splitBytes ?? 0,
    replicaIdentityFull: o.replicaIdentityFull ?? false,
    ...(o.sourceForTarget ? { sourceForTarget: o.sourceForTarget } : {}),
    maxLagBytes: o.maxLagBytes ?? bytesOf(defaultOf('maxLag')),
    catchUpTimeout: o.catchUpTimeout ?? defaultOf('catchUpTimeout'),
    applyTimeout: o.applyTimeout ?? defaultOf('applyTimeout'),
    maxBlackout: o.maxBlackout ?? defaultOf('maxBlackout'),
    verify: o.verify ?? 'count',
    ...(o.preHook ? { preHook: o.preHook } : {}),
    ...(o.postHook ? { postHook: o.postHook } : {}),
    streaming: o.streaming ?? true,
    batchSize: Math.max(0, o.batchSize ?? 0),
    batchPause: Math.max(0, o.batchPause ?? 0),
    bucardoParallelCopy: o.bucardoParallelCopy ?? false,
    ...(o.bucardoUrl ? { bucardoUrl: o.bucardoUrl } : {}),
    rollback: o.rollback ?? false,
    ...(o.pgbouncer ? { pgbouncer: o.pgbouncer } : {}),
    ...(isFiltered(o.filter) ? { filter: o.filter } : {}),
    ...(o.together ? { together: o.together } : {}),
  };
}

/** What the run records about its artefacts, so resume, cutover and cleanup find them. */
export interface StreamingMeta {
  /** For pglogical runs, `slot` becomes pglogical's own slot once the subscription is up. */
  names: LogicalNames;
  /** cutover: the fence is held by pgrelocate's session (nothing permanent); switched: the fence is permanent, replication being removed. */
  phase: 'copy' | 'streaming' | 'cutover' | 'switched' | 'done' | 'rolled-back';
  replicaIdentityChanged: string[];
  snapshotLsn: string | null;
  fence: FenceRecord | null;
  sourceDatabase: string;
  /** Reverse replication armed at the switch (--rollback), until a rollback or cleanup removes it. */
  rollback?: RollbackMeta | null;
  /** Key-less tables REPLICA IDENTITY FULL cannot match: not published, copied again inside the fence (check's fullCopyTables). */
  fullCopy?: string[];
  /** The run's filter, as sync was given it: cutover, verify, status and cleanup apply the same. */
  filter?: TableFilter;
}

/** What a new run records: its artefacts' names, nothing created yet. */
export function newMeta(runId: string, sourceDatabase: string): StreamingMeta {
  return { names: namesFor(runId), phase: 'copy', replicaIdentityChanged: [], snapshotLsn: null, fence: null, sourceDatabase };
}

/** The latest streaming run recorded on the target (`logical`, `pglogical` or `bucardo`, or only the one asked for). */
export async function previousRun(target: ConnInfo, strategy?: StreamingStrategy): Promise<RunRecord | null> {
  // Errors pass through: a wrong password must not read as "no run recorded".
  const run = await readRun(target);
  if (!run) return null;
  return (strategy ? run.strategy === strategy : isStreaming(run.strategy)) ? run : null;
}
