/**
 * A dump-restore run: preflight, the steps with state in the target, then a
 * report — also when a step fails, carried by `MigrationFailed`.
 */
import { isFiltered } from '../../filter';
import { opt } from '../../option-names';
import { defaultOf } from '../../options';
import { withRunLock } from '../../run-lock';
import os from 'node:os';
import { describe, type ConnInfo } from '../../conn';
import type { Finding } from '../../check';
import type { Strategy } from '../names';
import { DUMP_RESTORE_STEPS, type DumpRestoreContext, type DumpRestoreOptions } from './dump-restore';
import { PgrelocateError } from '../../errors';
import { defaultWorkDir, preflight, requireReady, type Preflight } from '../../preflight';
import { runSteps, type Emit, type StepResult } from '../../runner';
import { withRunState, withScratchDir } from '../../run';
import type { VerifyResult } from '../../verify';

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
    compress: o.compress ?? defaultOf('compress'),
    keepDump: o.keepDump ?? false,
    verify: o.verify ?? 'checksum',
    ...(isFiltered(o.filter) ? { filter: o.filter } : {}),
  };
}

/** Run a whole dump-restore migration. Throws PgrelocateError('check-failed') before touching anything if a check blocks. */
export async function migrate(
  source: ConnInfo,
  target: ConnInfo,
  options: MigrateOptions,
  emit: Emit = () => undefined,
): Promise<MigrationReport> {
  return withRunLock(target, 'migrate', () => migrateLocked(source, target, options, emit));
}

/** A dump-restore run that failed after it started: the error, with the report of what it did. */
export class MigrationFailed extends PgrelocateError {
  constructor(
    cause: PgrelocateError,
    readonly report: MigrationReport,
  ) {
    super(cause.code, cause.message, cause.fix, cause.detail);
  }
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
  const pre: Preflight = await preflight(source, target, {
    strategy,
    force: opts.force,
    workDir: opts.workDir,
    ...(opts.filter ? { filter: opts.filter } : {}),
  });
  for (const f of pre.findings) if (f.level === 'warning') emit({ type: 'log', level: 'warn', message: `${f.message} ${f.fix}` });
  const tools = requireReady(pre);
  return withRunState(
    target,
    { create: { strategy, source: describe(source) } },
    async (state) => {
      // The filter recorded with the run: a later verify compares what it moved, not the whole source.
      if (opts.filter) await state.setMeta({ filter: opts.filter });
      const steps: StepResult[] = [];
      let ctx: DumpRestoreContext | undefined;
      const t0 = Date.now();
      let failure: PgrelocateError | undefined;
      try {
        await withScratchDir(
          opts.workDir,
          `pgrelocate-dump-${state.runId}`,
          async (dumpDir) => {
            ctx = { runId: state.runId, source, target, pre, tools, opts, dumpDir };
            await runSteps(DUMP_RESTORE_STEPS, ctx, emit, state, steps);
          },
          (failed) => opts.keepDump && !failed,
        );
      } catch (e) {
        failure =
          e instanceof PgrelocateError
            ? e
            : new PgrelocateError(
                'step-failed',
                (e as Error).message,
                `See the step that failed in the report; fix and rerun with ${opt('force')}.`,
              );
      }
      const report = migrationReport(
        state.runId,
        strategy,
        source,
        target,
        pre,
        startedAt,
        (Date.now() - t0) / 1000,
        steps,
        failure,
        ctx?.verification,
      );
      await state.finish(failure ? 'failed' : 'done', report);
      if (failure) throw new MigrationFailed(failure, report);
      return report;
    },
    async () => undefined,
  );
}

/** The report of a dump-restore run, finished or failed. Pure. */
function migrationReport(
  runId: string,
  strategy: Strategy,
  source: ConnInfo,
  target: ConnInfo,
  pre: Preflight,
  startedAt: Date,
  seconds: number,
  steps: readonly StepResult[],
  failure: PgrelocateError | undefined,
  verification: VerifyResult | undefined,
): MigrationReport {
  const copySeconds = steps.filter((s) => s.name === 'dump' || s.name === 'restore').reduce((s, x) => s + x.seconds, 0);
  const tableBytes = pre.source.database.tables.reduce((s, t) => s + t.bytes, 0);
  return {
    runId,
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
    verification: verification ?? null,
  };
}
