/**
 * Strategy `logical`: `sync` copies under an exported snapshot and streams
 * every later change through a native subscription; `cutover` fences writes,
 * waits for the last change, copies what replication does not carry, verifies,
 * removes the replication artefacts and reports the write-blackout; `cleanup`
 * removes every artefact. State lives in the target's `pgferry` schema, so a
 * killed sync resumes and any process can read the status.
 */
import { mkdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import type pg from 'pg';
import { connect, describe, ident, withClient, type ConnInfo } from '../conn';
import type { Finding } from '../check';
import { tablesWithoutIdentity } from '../check';
import { migrateGlobals } from '../dump-restore';
import { PgferryError } from '../errors';
import { qualified, SYSTEM_SCHEMA_FILTER, type TableInfo } from '../inspect';
import { runTool } from '../tool-exec';
import { indexTables, parseToc, PostDataPipeline, splitPostData } from './post-data';
import { defaultWorkDir, preflight, requireReady, type Preflight } from '../preflight';
import { runSteps, type Emit, type Step, type StepResult } from '../runner';
import { readRun, RunState, type RunRecord } from '../state';
import type { ClientTools } from '../tools';
import { verify, type VerifyResult } from '../verify';
import { copyTables, type CopyResult } from './copy';
import { copyLargeObjects, copyUnlogged, refreshMatviews, syncSequences } from './cutover-steps';
import { fenceWrites, unfence, type FenceState } from './fence';
import { dumpSchema, restoreSection } from './schema';
import { createPublicationSql, ExportedSnapshot, namesFor, publishedTables, type LogicalNames } from './snapshot';
import { createSubscriptionSql, sourceLag, targetLagSeconds, waitForLsn, type Lag } from './subscription';

export interface LogicalOptions {
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
  readonly verify: 'checksum' | 'count' | 'none';
  readonly preHook?: string;
  readonly postHook?: string;
  /** false: copy once (schema, data, indexes, sequences, large objects) with no slot and no streaming. */
  readonly streaming: boolean;
}

export function resolveLogicalOptions(o: Partial<LogicalOptions>): LogicalOptions {
  return {
    jobs: Math.max(1, o.jobs ?? Math.max(2, os.cpus().length)),
    workDir: o.workDir ?? defaultWorkDir(),
    force: o.force ?? false,
    skipGlobals: o.skipGlobals ?? false,
    splitBytes: o.splitBytes ?? 0,
    replicaIdentityFull: o.replicaIdentityFull ?? false,
    ...(o.sourceForTarget ? { sourceForTarget: o.sourceForTarget } : {}),
    maxLagBytes: o.maxLagBytes ?? 16 * 1024 ** 2,
    catchUpTimeout: o.catchUpTimeout ?? 600,
    applyTimeout: o.applyTimeout ?? 60,
    verify: o.verify ?? 'count',
    ...(o.preHook ? { preHook: o.preHook } : {}),
    ...(o.postHook ? { postHook: o.postHook } : {}),
    streaming: o.streaming ?? true,
  };
}

/** What the run records about its artefacts, so resume, cutover and cleanup find them. */
export interface LogicalMeta {
  readonly names: LogicalNames;
  phase: 'copy' | 'streaming' | 'cutover' | 'done';
  replicaIdentityChanged: string[];
  snapshotLsn: string | null;
  fence: FenceState | null;
  sourceDatabase: string;
}

export interface SyncReport {
  readonly runId: string;
  readonly resumed: boolean;
  readonly alreadyStreaming: boolean;
  readonly steps: readonly StepResult[];
  readonly copy: CopyResult | null;
  readonly catchUpSeconds: number | null;
  /** WAL written on the source between the snapshot and the subscription: what catch-up applied. */
  readonly backlogBytes: number | null;
  readonly lag: Lag | null;
  readonly findings: readonly Finding[];
  readonly seconds: number;
}

interface SyncContext {
  readonly source: ConnInfo;
  readonly target: ConnInfo;
  readonly pre: Preflight;
  readonly tools: ClientTools;
  readonly opts: LogicalOptions;
  readonly state: RunState;
  readonly meta: LogicalMeta;
  readonly resumed: boolean;
  readonly doneBefore: ReadonlySet<string>;
  readonly schemaFile: string;
  copy?: CopyResult;
  post?: PostDataPipeline | null;
  catchUpSeconds?: number;
  backlogBytes?: number;
}

/** Drop a slot, first ending the WAL sender that holds it. */
async function dropSlot(c: pg.Client, slot: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await c.query<{ active_pid: number | null }>(`SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, [slot]);
    if (r.rowCount === 0) return;
    const pid = r.rows[0]!.active_pid;
    if (pid === null) {
      await c.query(`SELECT pg_drop_replication_slot($1)`, [slot]);
      return;
    }
    await c.query(`SELECT pg_terminate_backend($1)`, [pid]);
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new PgferryError(
    'slot-busy',
    `Replication slot ${slot} stays active.`,
    `Stop what streams from it, then: SELECT pg_drop_replication_slot('${slot}');`,
  );
}

/** Drop a subscription without leaving its slot behind (the slot is dropped from the source side). */
async function dropSubscription(dst: pg.Client, name: string): Promise<boolean> {
  const r = await dst.query(`SELECT 1 FROM pg_subscription WHERE subname = $1`, [name]);
  if (r.rowCount === 0) return false;
  await dst.query(`ALTER SUBSCRIPTION ${ident(name)} DISABLE`);
  await dst.query(`ALTER SUBSCRIPTION ${ident(name)} SET (slot_name = NONE)`);
  await dst.query(`DROP SUBSCRIPTION ${ident(name)}`);
  return true;
}

/**
 * The post-data pipeline for a copy: per-table indexes as tables finish. Null
 * (whole post-data after the copy) when the schema dump cannot be listed.
 */
async function pipelineFor(ctx: SyncContext, tables: readonly TableInfo[], emit: Emit): Promise<PostDataPipeline | null> {
  const list = await runTool(ctx.tools.pgRestore, ['-l', ctx.schemaFile], [], { captureStdout: true });
  if (list.exitCode !== 0) return null;
  const map = await withClient(ctx.source, 'source', indexTables);
  const split = splitPostData(parseToc(list.stdout), map, new Set(tables.map((t) => `${t.schema}.${t.name}`)));
  return new PostDataPipeline(ctx.tools, ctx.target, ctx.schemaFile, path.dirname(ctx.schemaFile), split, ctx.opts.jobs, ctx.resumed, emit);
}

const steps: Step<SyncContext>[] = [
  {
    name: 'globals',
    run: (ctx, emit) => migrateGlobals({ ...ctx, skip: ctx.opts.skipGlobals }, emit),
  },
  {
    name: 'schema-pre-data',
    async run(ctx, emit) {
      await dumpSchema(ctx.tools, ctx.source, ctx.schemaFile);
      if (ctx.doneBefore.has('schema-pre-data')) return { skipped: 'restored by the interrupted attempt' };
      const errors = await restoreSection(
        ctx.tools,
        ctx.target,
        ctx.schemaFile,
        'pre-data',
        { jobs: ctx.opts.jobs, force: ctx.opts.force, resumed: ctx.resumed },
        emit,
      );
      return { expectedErrors: errors.length };
    },
  },
  {
    name: 'replica-identity',
    async run(ctx, emit) {
      const tables = tablesWithoutIdentity(ctx.pre.source);
      if (tables.length === 0 || !ctx.opts.replicaIdentityFull) return { changed: [] };
      await withClient(ctx.source, 'source', async (c) => {
        for (const t of tables) {
          if (ctx.meta.replicaIdentityChanged.includes(t)) continue;
          await c.query(`ALTER TABLE ${t} REPLICA IDENTITY FULL`);
          ctx.meta.replicaIdentityChanged.push(t);
          await ctx.state.setMeta(ctx.meta);
        }
      });
      emit({
        type: 'log',
        level: 'warn',
        message: `REPLICA IDENTITY FULL set on the source for ${tables.join(', ')} (restored at cleanup)`,
      });
      return { changed: tables };
    },
  },
  {
    name: 'publication',
    async run(ctx) {
      const tables = publishedTables(ctx.pre.source.database.tables);
      await withClient(ctx.source, 'source', async (c) => {
        const exists = await c.query(`SELECT 1 FROM pg_publication WHERE pubname = $1`, [ctx.meta.names.publication]);
        if (exists.rowCount === 0) await c.query(createPublicationSql(ctx.meta.names.publication, tables));
      });
      return { publication: ctx.meta.names.publication, tables: tables.length };
    },
  },
  {
    name: 'copy',
    async run(ctx, emit) {
      const all = ctx.pre.source.database.tables.filter((t) => t.kind === 'r');
      if (ctx.resumed) {
        // The interrupted attempt's snapshot died with its connection: start over from a new one.
        await withClient(ctx.source, 'source', (c) => dropSlot(c, ctx.meta.names.slot));
        if (all.length > 0) await withClient(ctx.target, 'target', (c) => c.query(`TRUNCATE ${all.map((t) => qualified(t)).join(', ')}`));
        emit({ type: 'log', level: 'info', message: 'resuming: target tables truncated, copying again from a new snapshot' });
      }
      const snap = ctx.opts.streaming
        ? await ExportedSnapshot.create(ctx.source, ctx.meta.names.slot)
        : await ExportedSnapshot.plain(ctx.source);
      try {
        ctx.meta.snapshotLsn = snap.lsn;
        await ctx.state.setMeta(ctx.meta);
        ctx.post = await pipelineFor(ctx, all, emit);
        const post = ctx.post;
        ctx.copy = await copyTables(
          ctx.source,
          ctx.target,
          snap.name,
          all,
          {
            jobs: ctx.opts.jobs,
            splitBytes: ctx.opts.splitBytes,
            sourceVersionNum: ctx.pre.source.server.versionNum,
            ...(post ? { onTableCopied: (t: TableInfo) => post.tableCopied(`${t.schema}.${t.name}`) } : {}),
          },
          emit,
        );
      } finally {
        await snap.close();
      }
      return { ...ctx.copy, snapshotLsn: snap.lsn };
    },
  },
  {
    name: 'schema-post-data',
    async run(ctx, emit) {
      if (ctx.post) {
        // Per-table indexes were built during the copy; finish them, then the rest.
        const errors = await ctx.post.finish();
        return { pipelined: true, expectedErrors: errors.filter((e) => e.expected).length };
      }
      const errors = await restoreSection(
        ctx.tools,
        ctx.target,
        ctx.schemaFile,
        'post-data',
        { jobs: ctx.opts.jobs, force: false, resumed: ctx.resumed },
        emit,
      );
      return { expectedErrors: errors.length };
    },
  },
  {
    name: 'subscribe',
    async run(ctx) {
      await withClient(ctx.target, 'target', async (c) => {
        const exists = await c.query(`SELECT 1 FROM pg_subscription WHERE subname = $1`, [ctx.meta.names.subscription]);
        if (exists.rowCount === 0) await c.query(createSubscriptionSql(ctx.meta.names, ctx.opts.sourceForTarget ?? ctx.source));
      });
      ctx.meta.phase = 'streaming';
      await ctx.state.setMeta(ctx.meta);
      return { subscription: ctx.meta.names.subscription };
    },
  },
  {
    name: 'catch-up',
    async run(ctx, emit) {
      // Catch-up = the backlog that built up during the copy is applied: the target confirms the
      // source's position as of now. Then report how far behind it is.
      const t0 = Date.now();
      const r = await withClient(ctx.source, 'source', async (c) => {
        const row = (
          await c.query<{ lsn: string; backlog: string | null }>(
            `SELECT pg_current_wal_lsn()::text AS lsn, pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::bigint::text AS backlog`,
            [ctx.meta.snapshotLsn ?? '0/0'],
          )
        ).rows[0]!;
        const caughtUp = await waitForLsn(c, ctx.meta.names, row.lsn, ctx.opts.catchUpTimeout * 1000);
        return { ...row, caughtUp };
      });
      ctx.catchUpSeconds = (Date.now() - t0) / 1000;
      ctx.backlogBytes = Number(r.backlog ?? 0);
      if (!r.caughtUp) {
        emit({ type: 'log', level: 'warn', message: `the backlog is not applied after ${ctx.opts.catchUpTimeout}s; streaming continues` });
      }
      const lag = await withClient(ctx.source, 'source', (c) => sourceLag(c, ctx.meta.names));
      return { seconds: ctx.catchUpSeconds, backlogBytes: Number(r.backlog ?? 0), caughtUp: r.caughtUp, lagBytes: lag?.bytes ?? null };
    },
  },
];

const byName = (name: string): Step<SyncContext> => steps.find((s) => s.name === name)!;

/** The one-time copy: what a sync does, without slot, publication or subscription, then finished like a cutover. */
const COPY_STEPS: Step<SyncContext>[] = [
  byName('globals'),
  byName('schema-pre-data'),
  byName('copy'),
  byName('schema-post-data'),
  {
    name: 'finish',
    async run(ctx) {
      const src = await connect(ctx.source, 'source');
      const dst = await connect(ctx.target, 'target');
      try {
        const sequences = await syncSequences(src, dst);
        const los = await copyLargeObjects(src, dst);
        const matviews = await refreshMatviews(src, dst);
        return { sequences, largeObjects: los.count, matviews };
      } finally {
        await Promise.all([src.end(), dst.end()].map((p) => p.catch(() => undefined)));
      }
    },
  },
  {
    name: 'verify',
    async run(ctx) {
      if (ctx.opts.verify === 'none') return { skipped: true };
      const v = await verify(ctx.source, ctx.target, { mode: ctx.opts.verify, jobs: ctx.opts.jobs, matviews: false });
      if (!v.ok) {
        throw new PgferryError(
          'verify-failed',
          `Verification found ${v.mismatches.length} difference(s):\n  ${v.mismatches.slice(0, 10).join('\n  ')}`,
          'Writes reached the source during the copy (stop them for a one-time copy), or the copy failed; rerun with --force.',
          v,
        );
      }
      return { mode: v.mode, tables: v.tables.length, rows: v.rows };
    },
  },
];

export interface CopyReport {
  readonly runId: string;
  readonly steps: readonly StepResult[];
  readonly copy: CopyResult | null;
  readonly seconds: number;
  readonly findings: readonly Finding[];
}

/**
 * `pgferry copy`: schema, data under one snapshot, indexes, sequences, large
 * objects and materialized views, verified — once, with no streaming. Writes
 * made on the source during the copy are not carried: stop them, or use sync.
 */
export async function copyOnce(
  source: ConnInfo,
  target: ConnInfo,
  options: Partial<LogicalOptions>,
  emit: Emit = () => undefined,
): Promise<CopyReport> {
  const started = Date.now();
  const opts = resolveLogicalOptions({ ...options, streaming: false });
  const pre = await preflight(source, target, { strategy: 'dump-restore', force: opts.force, workDir: opts.workDir, writesDump: false });
  const tools = requireReady(pre);
  const stateClient = await connect(target, 'target');
  const state = await RunState.create(stateClient, 'copy', describe(source));
  const meta: LogicalMeta = {
    names: namesFor(state.runId),
    phase: 'copy',
    replicaIdentityChanged: [],
    snapshotLsn: null,
    fence: null,
    sourceDatabase: pre.source.database.name,
  };
  const schemaDir = path.join(opts.workDir, `pgferry-schema-${state.runId}`);
  mkdirSync(schemaDir, { recursive: true });
  const ctx: SyncContext = {
    source,
    target,
    pre,
    tools,
    opts,
    state,
    meta,
    resumed: false,
    doneBefore: new Set(),
    schemaFile: path.join(schemaDir, 'schema.dump'),
  };
  try {
    const results = await runSteps(COPY_STEPS, ctx, emit, state);
    const report: CopyReport = {
      runId: state.runId,
      steps: results,
      copy: ctx.copy ?? null,
      seconds: (Date.now() - started) / 1000,
      findings: pre.findings,
    };
    meta.phase = 'done';
    await state.setMeta(meta);
    await state.finish('done', report);
    return report;
  } catch (e) {
    await state.setPhase('copy', 'failed').catch(() => undefined);
    throw e;
  } finally {
    rmSync(schemaDir, { recursive: true, force: true });
    await stateClient.end().catch(() => undefined);
  }
}

/** Poll the slot until the target is at most `maxBytes` behind (or time runs out). */
export async function waitForLag(
  source: ConnInfo,
  names: LogicalNames,
  maxBytes: number,
  timeoutSeconds: number,
  emit: Emit,
): Promise<Lag> {
  return withClient(source, 'source', async (c) => {
    const deadline = Date.now() + timeoutSeconds * 1000;
    let lastLog = 0;
    for (;;) {
      const lag = await sourceLag(c, names);
      if (!lag)
        throw new PgferryError(
          'slot-missing',
          `Replication slot ${names.slot} is gone from the source.`,
          'Run pgferry cleanup, then sync again.',
        );
      if ((lag.bytes <= maxBytes && lag.slotActive) || Date.now() > deadline) return lag;
      if (Date.now() - lastLog > 2000) {
        lastLog = Date.now();
        emit({
          type: 'log',
          level: 'info',
          message: `catching up: ${lag.bytes} bytes behind${lag.slotActive ? '' : ' (subscription not connected yet)'}`,
        });
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  });
}

async function previousRun(target: ConnInfo): Promise<RunRecord | null> {
  const run = await readRun(target).catch(() => null);
  return run && run.strategy === 'logical' ? run : null;
}

/** Copy, then stream. Idempotent: an interrupted sync resumes; a streaming one returns at once. */
export async function sync(
  source: ConnInfo,
  target: ConnInfo,
  options: Partial<LogicalOptions>,
  emit: Emit = () => undefined,
): Promise<SyncReport> {
  const started = Date.now();
  const opts = resolveLogicalOptions(options);
  const prev = await previousRun(target);
  const prevMeta = (prev?.meta ?? null) as LogicalMeta | null;
  if (prev && prevMeta && prevMeta.phase === 'streaming') {
    const lag = await withClient(source, 'source', (c) => sourceLag(c, prevMeta.names));
    return {
      runId: prev.id,
      resumed: false,
      alreadyStreaming: true,
      steps: [],
      copy: null,
      catchUpSeconds: null,
      backlogBytes: null,
      lag,
      findings: [],
      seconds: 0,
    };
  }
  const resumable = prev && prevMeta && prevMeta.phase === 'copy' ? prev : null;
  const pre = await preflight(source, target, {
    strategy: 'logical',
    force: opts.force || resumable !== null,
    workDir: opts.workDir,
    replicaIdentityFull: opts.replicaIdentityFull,
  });
  for (const f of pre.findings) if (f.level === 'warning') emit({ type: 'log', level: 'warn', message: `${f.message} ${f.fix}` });
  const tools = requireReady(pre);
  const stateClient = await connect(target, 'target');
  let state: RunState;
  let meta: LogicalMeta;
  if (resumable && prevMeta) {
    state = await RunState.resume(stateClient, resumable.id);
    meta = prevMeta;
    emit({ type: 'log', level: 'info', message: `resuming run ${resumable.id}` });
  } else {
    state = await RunState.create(stateClient, 'logical', describe(source));
    meta = {
      names: namesFor(state.runId),
      phase: 'copy',
      replicaIdentityChanged: [],
      snapshotLsn: null,
      fence: null,
      sourceDatabase: pre.source.database.name,
    };
    await state.setMeta(meta);
  }
  const schemaDir = path.join(opts.workDir, `pgferry-schema-${state.runId}`);
  mkdirSync(schemaDir, { recursive: true });
  const ctx: SyncContext = {
    source,
    target,
    pre,
    tools,
    opts,
    state,
    meta,
    resumed: resumable !== null,
    doneBefore: new Set((resumable?.steps ?? []).filter((s) => s.status === 'done').map((s) => s.name)),
    schemaFile: path.join(schemaDir, 'schema.dump'),
  };
  let results: StepResult[];
  try {
    results = await runSteps(steps, ctx, emit, state);
    await state.setPhase('streaming');
  } catch (e) {
    await state.setPhase(meta.phase, 'failed').catch(() => undefined);
    throw e;
  } finally {
    rmSync(schemaDir, { recursive: true, force: true });
    await stateClient.end().catch(() => undefined);
  }
  const lag = await withClient(source, 'source', (c) => sourceLag(c, meta.names));
  return {
    runId: state.runId,
    resumed: ctx.resumed,
    alreadyStreaming: false,
    steps: results,
    copy: ctx.copy ?? null,
    catchUpSeconds: ctx.catchUpSeconds ?? null,
    backlogBytes: ctx.backlogBytes ?? null,
    lag,
    findings: pre.findings,
    seconds: (Date.now() - started) / 1000,
  };
}

export interface CutoverReport {
  readonly runId: string;
  readonly ok: boolean;
  /** Fence to target ready: the time the application could not write. */
  readonly blackoutSeconds: number;
  readonly steps: readonly { readonly name: string; readonly seconds: number }[];
  readonly sequences: number;
  readonly unloggedRows: number;
  readonly largeObjects: number;
  readonly matviews: number;
  readonly terminatedSessions: number;
  readonly verification: VerifyResult | null;
  /** The target's URL, without its password: where the application goes now. */
  readonly newTarget: string;
}

async function runHook(cmd: string, label: string): Promise<void> {
  const r = await execa(cmd, { shell: true, reject: false, stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 });
  if (r.exitCode !== 0) {
    throw new PgferryError(
      'hook-failed',
      `The ${label} hook failed (exit ${r.exitCode}): ${String(r.stderr).split('\n').slice(-5).join(' ')}`,
      `Fix the ${label} hook command and retry.`,
    );
  }
}

/**
 * The cutover protocol. Any failure before the switch lifts the fence and
 * keeps replication running: nothing lost, nothing half-done.
 */
export async function cutover(
  source: ConnInfo,
  target: ConnInfo,
  options: Partial<LogicalOptions>,
  emit: Emit = () => undefined,
): Promise<CutoverReport> {
  const opts = resolveLogicalOptions(options);
  const run = await previousRun(target);
  const meta = (run?.meta ?? null) as LogicalMeta | null;
  if (!run || !meta) throw new PgferryError('no-run', 'No logical run is recorded on this target.', 'Run pgferry sync first.');
  if (meta.phase === 'done')
    throw new PgferryError(
      'already-cut-over',
      `Run ${run.id} was already cut over.`,
      'Nothing to do; run pgferry cleanup to remove the state.',
    );
  if (meta.phase !== 'streaming')
    throw new PgferryError(
      'not-streaming',
      `Run ${run.id} is not streaming yet (phase ${meta.phase}).`,
      'Run pgferry sync until it reports streaming.',
    );
  const timings: { name: string; seconds: number }[] = [];
  const timed = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    emit({ type: 'step', name, status: 'start' });
    const t = Date.now();
    try {
      const v = await fn();
      timings.push({ name, seconds: (Date.now() - t) / 1000 });
      emit({ type: 'step', name, status: 'done', seconds: (Date.now() - t) / 1000 });
      return v;
    } catch (e) {
      emit({ type: 'step', name, status: 'failed', seconds: (Date.now() - t) / 1000 });
      throw e;
    }
  };
  const lag = await timed('lag-gate', () => waitForLag(source, meta.names, opts.maxLagBytes, opts.catchUpTimeout, emit));
  if (lag.bytes > opts.maxLagBytes) {
    throw new PgferryError(
      'lag-too-high',
      `The target is ${lag.bytes} bytes behind (threshold ${opts.maxLagBytes}); nothing was fenced.`,
      'Wait for catch-up (pgferry status) or raise --max-lag.',
    );
  }
  if (opts.preHook) await timed('pre-hook', () => runHook(opts.preHook!, 'pre'));
  const src = await connect(source, 'source');
  const dst = await connect(target, 'target');
  const stateClient = await connect(target, 'target');
  const state = await RunState.resume(stateClient, run.id);
  let fence: FenceState | null = null;
  let fencedAt = 0;
  try {
    const unlogged = (
      await src.query<{ q: string }>(
        `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS q FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind = 'r' AND c.relpersistence = 'u' AND ${SYSTEM_SCHEMA_FILTER}`,
      )
    ).rows.map((r) => r.q);
    fencedAt = Date.now();
    fence = await timed('fence', () => fenceWrites(src, meta.sourceDatabase));
    meta.fence = fence;
    meta.phase = 'cutover';
    await state.setMeta(meta);
    await timed('final-lsn', async () => {
      const lsn = (await src.query<{ l: string }>(`SELECT pg_current_wal_lsn()::text AS l`)).rows[0]!.l;
      if (!(await waitForLsn(src, meta.names, lsn, opts.applyTimeout * 1000))) {
        throw new PgferryError(
          'apply-timeout',
          `The target did not apply the source's final LSN ${lsn} within ${opts.applyTimeout}s.`,
          'Check the subscription on the target (pg_stat_subscription, server log) and retry the cutover.',
        );
      }
    });
    await dst.query('SET synchronous_commit = on');
    const sequences = await timed('sequences', () => syncSequences(src, dst));
    const unloggedRows = await timed('unlogged-tables', () => copyUnlogged(src, dst, unlogged));
    const los = await timed('large-objects', () => copyLargeObjects(src, dst));
    const matviews = await timed('matviews', () => refreshMatviews(src, dst));
    let verification: VerifyResult | null = null;
    if (opts.verify !== 'none') {
      verification = await timed('verify', () =>
        verify(source, target, { mode: opts.verify === 'none' ? 'count' : opts.verify, jobs: opts.jobs, matviews: false }),
      );
      if (!verification.ok) {
        throw new PgferryError(
          'verify-failed',
          `Verification failed at cutover; the source was unfenced and replication keeps running:\n  ${verification.mismatches.slice(0, 10).join('\n  ')}`,
          'Investigate the differences (pgferry verify), fix the target, and run cutover again.',
          verification,
        );
      }
    }
    const blackoutSeconds = (Date.now() - fencedAt) / 1000;
    await timed('remove-replication', async () => {
      await dropSubscription(dst, meta.names.subscription);
      await dropSlot(src, meta.names.slot);
      await src.query(`DROP PUBLICATION IF EXISTS ${meta.names.publication}`);
    });
    meta.phase = 'done';
    await state.setMeta(meta);
    if (opts.postHook)
      await timed('post-hook', () => runHook(opts.postHook!, 'post')).catch((e: Error) =>
        emit({ type: 'log', level: 'warn', message: e.message }),
      );
    const report: CutoverReport = {
      runId: run.id,
      ok: true,
      blackoutSeconds,
      steps: timings,
      sequences,
      unloggedRows,
      largeObjects: los.count,
      matviews,
      terminatedSessions: fence.terminated,
      verification,
      newTarget: describe(target),
    };
    await state.finish('done', report);
    return report;
  } catch (e) {
    if (fence) {
      await unfence(src, fence).catch((err: Error) =>
        emit({ type: 'log', level: 'warn', message: `could not lift the fence: ${err.message}; run pgferry cleanup --unfence` }),
      );
      meta.fence = null;
      meta.phase = 'streaming';
      await state.setMeta(meta).catch(() => undefined);
      await state.setPhase('streaming').catch(() => undefined);
    }
    throw e;
  } finally {
    await Promise.all([src, dst, stateClient].map((c) => c.end().catch(() => undefined)));
  }
}

/** Remove every artefact of logical runs: subscription, slot, publication, replica identity changes, state. */
export async function cleanupLogical(source: ConnInfo, target: ConnInfo, opts: { readonly unfence?: boolean } = {}): Promise<string[]> {
  const removed: string[] = [];
  const run = await previousRun(target).catch(() => null);
  const meta = (run?.meta ?? null) as LogicalMeta | null;
  await withClient(target, 'target', async (dst) => {
    // pg_subscription is shared by every database of the server: only this database's.
    const subs = await dst.query<{ subname: string }>(
      `SELECT subname FROM pg_subscription WHERE subname LIKE 'pgferry\\_%' AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    );
    for (const s of subs.rows) if (await dropSubscription(dst, s.subname)) removed.push(`subscription ${s.subname} (target)`);
  });
  await withClient(source, 'source', async (src) => {
    // The source may be fenced read-only after a cutover: this session still has work to do.
    await src.query('SET default_transaction_read_only = off');
    const slots = await src.query<{ slot_name: string }>(
      `SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'pgferry\\_%' AND database = current_database()`,
    );
    for (const s of slots.rows) {
      await dropSlot(src, s.slot_name);
      removed.push(`slot ${s.slot_name} (source)`);
    }
    const pubs = await src.query<{ pubname: string }>(`SELECT pubname FROM pg_publication WHERE pubname LIKE 'pgferry\\_%'`);
    for (const p of pubs.rows) {
      await src.query(`DROP PUBLICATION ${ident(p.pubname)}`);
      removed.push(`publication ${p.pubname} (source)`);
    }
    for (const t of meta?.replicaIdentityChanged ?? []) {
      await src.query(`ALTER TABLE ${t} REPLICA IDENTITY DEFAULT`);
      removed.push(`REPLICA IDENTITY FULL on ${t} (source, back to DEFAULT)`);
    }
    if (opts.unfence && meta?.fence) {
      await unfence(src, meta.fence);
      removed.push('write fence (source)');
    }
  });
  await withClient(target, 'target', (c) => c.query('DROP SCHEMA IF EXISTS pgferry CASCADE'));
  removed.push('schema pgferry (target)');
  return removed;
}

export interface LogicalStatus {
  readonly run: RunRecord | null;
  readonly phase: string | null;
  readonly lag: Lag | null;
  readonly targetLagSeconds: number | null;
}

export async function logicalStatus(source: ConnInfo | null, target: ConnInfo): Promise<LogicalStatus> {
  const run = await previousRun(target);
  const meta = (run?.meta ?? null) as LogicalMeta | null;
  if (!run || !meta) return { run, phase: null, lag: null, targetLagSeconds: null };
  const lag = source && meta.phase === 'streaming' ? await withClient(source, 'source', (c) => sourceLag(c, meta.names)) : null;
  const secs = meta.phase === 'streaming' ? await withClient(target, 'target', (c) => targetLagSeconds(c, meta.names)) : null;
  return { run, phase: meta.phase, lag, targetLagSeconds: lag && lag.bytes === 0 ? 0 : secs };
}
