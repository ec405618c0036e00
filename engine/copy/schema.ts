/**
 * Schema for the logical strategy: one `pg_dump --schema-only` of the source,
 * restored in two sections — pre-data (types, tables, functions, views)
 * before the copy, post-data (indexes, constraints, foreign keys, triggers,
 * materialized view data) after it, in parallel.
 */
import type { ConnInfo } from '../conn';
import { PgrelocateError } from '../errors';
import { markResumed, parseRestoreErrors, type RestoreError } from '../restore-errors';
import type { Emit } from '../runner';
import { restoreSchemasFirst } from '../schemas-first';
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

export async function dumpSchema(tools: ClientTools, source: ConnInfo, file: string, filter: readonly string[] = []): Promise<void> {
  const r = await runTool(tools.pgDump, schemaDumpArgs(source, file, filter), [source]);
  if (r.exitCode !== 0) {
    throw new PgrelocateError(
      'schema-dump-failed',
      `pg_dump --schema-only failed: ${r.stderr.split('\n').slice(-8).join('\n')}`,
      'Fix the cause on the source and rerun.',
    );
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
  opts: { readonly jobs: number; readonly force: boolean; readonly resumed: boolean },
  emit: Emit,
): Promise<RestoreError[]> {
  // Index builds and constraint checks get memory for sorting; nothing here needs to wait for a flush.
  const env = { PGOPTIONS: RESTORE_SESSION_OPTIONS };
  const main = sectionRestoreArgs(target, file, section, opts.jobs, opts.force);
  const first =
    section === 'pre-data'
      ? await restoreSchemasFirst(tools.pgRestore, target, main, { section, env })
      : { errors: [], args: main, cleanup: () => undefined };
  let r: Awaited<ReturnType<typeof runTool>>;
  try {
    r = await runTool(tools.pgRestore, first.args, [target], { env });
  } finally {
    first.cleanup();
  }
  const errors = markResumed([...first.errors, ...parseRestoreErrors(r.stderr)], opts.resumed);
  const real = errors.filter((e) => !e.expected);
  for (const e of errors.filter((x) => x.expected))
    emit({ type: 'log', level: 'detail', message: `schema ${section}: expected: ${e.message}` });
  if (real.length > 0 || (r.exitCode !== 0 && errors.length === 0)) {
    throw new PgrelocateError(
      'schema-restore-failed',
      `Restoring the schema (${section}) failed:\n  ${
        real
          .slice(0, 8)
          .map((e) => `${e.message}${e.command ? ` [${e.command.slice(0, 160)}]` : ''}`)
          .join('\n  ') || r.stderr.split('\n').slice(-8).join('\n  ')
      }`,
      'Fix the cause (missing roles or extensions on the target), then rerun sync; it resumes.',
      { errors },
    );
  }
  return errors;
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
    expected += (await restoreSection(tools, target, file, section, opts, emit)).length;
  return expected;
}
