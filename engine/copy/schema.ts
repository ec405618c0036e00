/**
 * Schema for the logical strategy: one `pg_dump --schema-only` of the source,
 * restored in two sections — pre-data (types, tables, functions, views)
 * before the copy, post-data (indexes, constraints, foreign keys, triggers,
 * materialized view data) after it, in parallel.
 */
import { withClient, type ConnInfo } from '../conn';
import { PgrelocateError } from '../errors';
import { rmSync, writeFileSync } from 'node:fs';
import { markResumed, parseRestoreErrors, type RestoreError } from '../restore-errors';
import type { Emit } from '../runner';
import { restoreSchemasFirst, withList } from '../schemas-first';
import { MIN_PARALLEL_RUN, preDataDeps, preDataStages, tableEntryOid, type PreDataStage } from './pre-data-stages';
import { libpqUrl, runTool } from '../tool-exec';
import type { ClientTools } from '../tools';

/** Session settings for schema restore sessions on the target (libpq PGOPTIONS). Pure. */
export function restoreSessionOptions(maintenanceWorkMem = '512MB'): string {
  return `-c maintenance_work_mem=${maintenanceWorkMem} -c synchronous_commit=off`;
}

export const RESTORE_SESSION_OPTIONS = restoreSessionOptions();

/** `filter`: the --exclude-schema/--exclude-table arguments of the run's filter (`dumpFilterArgs`). */
export function schemaDumpArgs(source: ConnInfo, file: string, filter: readonly string[] = []): string[] {
  return [
    '-Fc',
    '--schema-only',
    '--no-tablespaces',
    '--no-subscriptions',
    '--exclude-schema=pgrelocate',
    ...filter,
    '-f',
    file,
    '-d',
    libpqUrl(source),
  ];
}

export function sectionRestoreArgs(
  target: ConnInfo,
  file: string,
  section: 'pre-data' | 'post-data',
  jobs: number,
  force: boolean,
): string[] {
  const args = ['-Fc', `--section=${section}`, '--no-tablespaces', '-v'];
  if (section === 'post-data') args.push('-j', String(jobs));
  if (force && section === 'pre-data') args.push('--clean', '--if-exists');
  args.push('-d', libpqUrl(target), file);
  return args;
}

export async function dumpSchema(
  tools: ClientTools,
  source: ConnInfo,
  file: string,
  filter: readonly string[] = [],
  signal?: AbortSignal,
): Promise<void> {
  const r = await runTool(tools.pgDump, schemaDumpArgs(source, file, filter), [source], signal ? { signal } : {});
  if (signal?.aborted) {
    throw new PgrelocateError(
      'schema-dump-failed',
      'pg_dump --schema-only was stopped: the run ended first',
      'See the error that ended the run.',
    );
  }
  if (r.exitCode !== 0) {
    throw new PgrelocateError(
      'schema-dump-failed',
      `pg_dump --schema-only failed: ${r.stderr.split('\n').slice(-8).join('\n')}`,
      'Fix the cause on the source and rerun.',
    );
  }
}

/**
 * The schema dump begun during the preflight, as soon as the source's version
 * (which picks pg_dump) is known: over a link of 20 ms it starts about 0.3 s
 * sooner. It only reads the source. The run takes it at pre-data; whatever
 * ends the run first stops it, and `stop` returns once pg_dump has exited, so
 * the dump never outlives a refused preflight.
 */
export class EarlySchemaDump {
  private readonly abort = new AbortController();
  private running: Promise<void> | null = null;

  constructor(
    private readonly source: ConnInfo,
    readonly file: string,
  ) {}

  /** Begin the dump; a no-op once stopped, so a preflight's late callback cannot start one. */
  start(tools: ClientTools, filter: readonly string[]): void {
    if (this.running || this.abort.signal.aborted) return;
    this.running = dumpSchema(tools, this.source, this.file, filter, this.abort.signal);
    this.running.catch(() => undefined); // the pre-data step's to report
  }

  /** The dump's end, or null when it was never started (pre-data dumps then). */
  get done(): Promise<void> | null {
    return this.running;
  }

  /** End pg_dump if it still runs, and wait for it. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.running?.catch(() => undefined);
  }
}

/**
 * Restore one section. On a resumed run, objects from the earlier attempt
 * "already exist": those errors are expected then.
 */
export async function restoreSection(
  tools: ClientTools,
  target: ConnInfo,
  file: string,
  section: 'pre-data' | 'post-data',
  opts: {
    readonly jobs: number;
    readonly force: boolean;
    readonly resumed: boolean;
    /** The source the archive was dumped from: pre-data reads there which tables depend on no other relation, and creates runs of them over the jobs. */
    readonly source?: ConnInfo;
  },
  emit: Emit,
): Promise<RestoreError[]> {
  // Index builds and constraint checks get memory for sorting; nothing here needs to wait for a flush.
  const env = { PGOPTIONS: RESTORE_SESSION_OPTIONS };
  const main = sectionRestoreArgs(target, file, section, opts.jobs, opts.force);
  const first =
    section === 'pre-data'
      ? await restoreSchemasFirst(tools.pgRestore, target, main, { section, env })
      : { errors: [], args: main, entries: null, cleanup: () => undefined };
  const runs: Awaited<ReturnType<typeof runTool>>[] = [];
  try {
    // Not with --clean (--force): its drops run in reverse order over the whole list, which stages would break up.
    const stages =
      section === 'pre-data' && opts.source && opts.jobs > 1 && !opts.force ? await stagesOf(first.entries, opts.jobs, opts.source) : null;
    if (!stages) runs.push(await runTool(tools.pgRestore, first.args, [target], { env }));
    else {
      const base = first.args.includes('-L') ? first.args.filter((a, i, all) => a !== '-L' && all[i - 1] !== '-L') : first.args;
      const parallel = stages.flatMap((st) => (st.kind === 'parallel' ? st.lists : []));
      const width = Math.max(...stages.map((st) => (st.kind === 'parallel' ? st.lists.length : 1)));
      emit({
        type: 'log',
        level: 'detail',
        message: `schema pre-data: ${parallel.flat().filter((l) => tableEntryOid(l) !== null).length} tables created over ${width} sessions at once`,
      });
      for (const [i, stage] of stages.entries()) {
        const lists = stage.kind === 'serial' ? [stage.lines] : stage.lists;
        const rs = await Promise.all(
          lists.map((lines, j) => {
            const list = `${file}.stage-${i}-${j}.list`;
            writeFileSync(list, lines.join('\n') + '\n');
            return runTool(tools.pgRestore, withList(base, list), [target], { env }).finally(() => rmSync(list, { force: true }));
          }),
        );
        runs.push(...rs);
        // A stage that failed leaves later ones nothing sound to build on.
        if (rs.some((r) => r.exitCode !== 0 && markResumed(parseRestoreErrors(r.stderr), opts.resumed).some((e) => !e.expected))) break;
      }
    }
  } finally {
    first.cleanup();
  }
  const errors = markResumed([...first.errors, ...runs.flatMap((r) => parseRestoreErrors(r.stderr))], opts.resumed);
  const real = errors.filter((e) => !e.expected);
  for (const e of errors.filter((x) => x.expected))
    emit({ type: 'log', level: 'detail', message: `schema ${section}: expected: ${e.message}` });
  const failedRun = runs.find((r) => r.exitCode !== 0);
  if (real.length > 0 || (failedRun && errors.length === 0)) {
    throw new PgrelocateError(
      'schema-restore-failed',
      `Restoring the schema (${section}) failed:\n  ${
        real
          .slice(0, 8)
          .map((e) => `${e.message}${e.command ? ` [${e.command.slice(0, 160)}]` : ''}`)
          .join('\n  ') || (failedRun?.stderr ?? '').split('\n').slice(-8).join('\n  ')
      }`,
      'Fix the cause (missing roles or extensions on the target), then rerun sync; it resumes.',
      { errors },
    );
  }
  return errors;
}

/**
 * The pre-data restore in stages, or null when nothing would run in parallel (one pg_restore then, as before).
 * The source is asked only when the archive has tables enough for a parallel run: a connection to a distant
 * source costs several round trips.
 */
async function stagesOf(entries: readonly string[] | null, jobs: number, source: ConnInfo): Promise<PreDataStage[] | null> {
  if (!entries || entries.filter((l) => tableEntryOid(l) !== null).length < MIN_PARALLEL_RUN) return null;
  const deps = await withClient(source, 'source', preDataDeps);
  const stages = preDataStages(entries, deps, jobs);
  // pg_restore applies default privileges after every object of its run; one applied by an earlier stage
  // would grant on the tables a later stage creates.
  const last = stages.map((st) => st.kind).lastIndexOf('parallel');
  if (last < 0 || stages.slice(0, last).some((st) => st.kind === 'serial' && st.lines.some((l) => / DEFAULT ACL /.test(l)))) return null;
  return stages;
}

/**
 * The whole schema, pre- then post-data, before any data: what trigger- or
 * extension-based replication (pglogical, Bucardo) needs, as it applies
 * changes through the target's keys. Returns the expected errors' count.
 */
export async function restoreWholeSchema(
  tools: ClientTools,
  source: ConnInfo,
  target: ConnInfo,
  file: string,
  opts: { readonly jobs: number; readonly force: boolean; readonly resumed: boolean; readonly filter?: readonly string[] },
  emit: Emit,
): Promise<number> {
  await dumpSchema(tools, source, file, opts.filter);
  let expected = 0;
  for (const section of ['pre-data', 'post-data'] as const)
    expected += (await restoreSection(tools, target, file, section, { ...opts, source }, emit)).length;
  return expected;
}
