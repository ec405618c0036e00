/**
 * `migrate`: preflight, then the strategy's steps with state in the target,
 * then a report. The engine's one entry point for a whole run.
 */
import { opt } from './option-names';
import { withRunLock } from './run-lock';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect, describe, type ConnInfo } from './conn';
import type { Finding } from './check';
import type { Strategy } from './strategies/names';
import { DUMP_RESTORE_STEPS, type DumpRestoreContext, type DumpRestoreOptions } from './strategies/dump-restore/dump-restore';
import { PgrelocateError } from './errors';
import { defaultWorkDir, preflight, requireReady, type Preflight } from './preflight';
import { runSteps, type Emit, type StepResult } from './runner';
import { RunState } from './state';
import type { VerifyResult } from './verify';

export interface MigrateOptions extends Partial<DumpRestoreOptions> {
  readonly strategy?: Strategy;
}

export interface MigrationReport {
  readonly runId: string;
  readonly strategy: Strategy;
  readonly ok: boolean;
  readonly error?: { readonly code: string; readonly message: string; readonly fix: string };
  readonly source: {
    readonly url: string;
    readonly version: string;
    readonly major: number;
    readonly bytes: number;
    readonly tables: number;
  };
  readonly target: { readonly url: string; readonly version: string; readonly major: number };
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly seconds: number;
  /** Time during which the application must not write: for dump-restore, the whole run after preflight. */
  readonly downtimeSeconds: number;
  /** Source table bytes per second of the dump + restore. */
  readonly throughputBytesPerSecond: number | null;
  readonly steps: readonly StepResult[];
  readonly findings: readonly Finding[];
  readonly verification: VerifyResult | null;
}

export function resolveOptions(o: MigrateOptions): DumpRestoreOptions {
  return {
    jobs: Math.max(1, o.jobs ?? Math.max(2, os.cpus().length)),
    workDir: o.workDir ?? defaultWorkDir(),
    force: o.force ?? false,
    skipGlobals: o.skipGlobals ?? false,
    noOwner: o.noOwner ?? false,
    noPrivileges: o.noPrivileges ?? false,
    compress: o.compress ?? 0,
    keepDump: o.keepDump ?? false,
    verify: o.verify ?? 'checksum',
  };
}

/** Run a whole migration. Throws PgrelocateError('check-failed') before touching anything if a check blocks. */
export async function migrate(
  source: ConnInfo,
  target: ConnInfo,
  options: MigrateOptions,
  emit: Emit = () => undefined,
): Promise<MigrationReport> {
  return withRunLock(target, 'migrate', () => migrateLocked(source, target, options, emit));
}

async function migrateLocked(
  source: ConnInfo,
  target: ConnInfo,
  options: MigrateOptions,
  emit: Emit = () => undefined,
): Promise<MigrationReport> {
  const strategy = options.strategy ?? 'dump-restore';
  const opts = resolveOptions(options);
  const startedAt = new Date();
  const pre: Preflight = await preflight(source, target, { strategy, force: opts.force, workDir: opts.workDir });
  for (const f of pre.findings) if (f.level === 'warning') emit({ type: 'log', level: 'warn', message: `${f.message} ${f.fix}` });
  const tools = requireReady(pre);
  const runId = randomUUID();
  const stateClient = await connect(target, 'target');
  const state = await RunState.create(stateClient, strategy, describe(source));
  const ctx: DumpRestoreContext = {
    runId: state.runId,
    source,
    target,
    pre,
    tools,
    opts,
    dumpDir: path.join(opts.workDir, `pgrelocate-dump-${runId}`),
  };
  const t0 = Date.now();
  let steps: StepResult[] = [];
  let failure: PgrelocateError | undefined;
  try {
    steps = await runSteps(DUMP_RESTORE_STEPS, ctx, emit, state);
  } catch (e) {
    steps = (e as { stepResults?: StepResult[] }).stepResults ?? [];
    failure =
      e instanceof PgrelocateError
        ? e
        : new PgrelocateError(
            'step-failed',
            (e as Error).message,
            `See the step that failed in the report; fix and rerun with ${opt('force')}.`,
          );
  } finally {
    if (!opts.keepDump || failure) rmSync(ctx.dumpDir, { recursive: true, force: true });
  }
  const seconds = (Date.now() - t0) / 1000;
  const copySeconds = steps.filter((s) => s.name === 'dump' || s.name === 'restore').reduce((s, x) => s + x.seconds, 0);
  const tableBytes = pre.source.database.tables.reduce((s, t) => s + t.bytes, 0);
  const report: MigrationReport = {
    runId: state.runId,
    strategy,
    ok: !failure,
    ...(failure ? { error: { code: failure.code, message: failure.message, fix: failure.fix } } : {}),
    source: {
      url: describe(source),
      version: pre.source.server.version.split(' on ')[0] ?? '',
      major: pre.source.server.major,
      bytes: pre.source.database.bytes,
      tables: pre.source.database.tables.length,
    },
    target: { url: describe(target), version: pre.target.server.version.split(' on ')[0] ?? '', major: pre.target.server.major },
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    seconds,
    downtimeSeconds: seconds,
    throughputBytesPerSecond: copySeconds > 0 && !failure ? tableBytes / copySeconds : null,
    steps,
    findings: pre.findings,
    verification: ctx.verification ?? null,
  };
  try {
    await state.finish(failure ? 'failed' : 'done', report);
  } finally {
    await stateClient.end().catch(() => undefined);
  }
  if (failure) throw Object.assign(failure, { report });
  return report;
}
