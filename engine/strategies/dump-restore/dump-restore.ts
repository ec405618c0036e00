/**
 * Strategy `dump-restore` (seeds 000, 001, 003 automated): roles, then
 * `pg_dump -Fd -j N` and `pg_restore -j N` with classified restore errors,
 * `VACUUM ANALYZE`, and verification. Writes must be stopped for the whole
 * run: its duration is the downtime, and the report says so.
 */
import { opt } from '../../option-names';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { analyzeRelations, relationsToAnalyze } from '../../analyze';
import { estimateDumpBytes } from '../../check';
import { ident, withClient, type ConnInfo } from '../../conn';
import { applyDatabaseSettings } from '../../database-settings';
import { PgrelocateError } from '../../errors';
import { dumpFilterArgs, filterSql, type TableFilter } from '../../filter';
import { MANAGED_ROLE, migrateGlobals } from '../../globals';
import type { Preflight } from '../../preflight';
import { parseRestoreErrors, type RestoreError } from '../../restore-errors';
import type { TableInfo } from '../../inspect';
import { ProgressMeter, type Emit, type Step } from '../../runner';
import { restoreSchemasFirst } from '../../schemas-first';
import { errorLines, libpqUrl, runTool } from '../../tool-exec';
import type { ClientTools } from '../../tools';
import { formatBytes } from '../../units';
import { verify, type VerifyMode, type VerifyResult } from '../../verify';

export interface DumpRestoreOptions {
  /** Parallel jobs for pg_dump, pg_restore, vacuum and verify. */
  readonly jobs: number;
  /** Where the directory-format dump is written. */
  readonly workDir: string;
  /** Replace objects on a non-empty target (pg_restore --clean --if-exists). */
  readonly force: boolean;
  /** Do not migrate roles (pg_dumpall --globals-only). */
  readonly skipGlobals: boolean;
  /** pg_restore --no-owner: objects belong to the target user. */
  readonly noOwner: boolean;
  /** pg_restore --no-privileges: no GRANTs. */
  readonly noPrivileges: boolean;
  /** pg_dump compression level (0 = none, fastest on a local disk). */
  readonly compress: number;
  /** Keep the dump directory after a successful run. */
  readonly keepDump: boolean;
  readonly verify: VerifyMode | 'none';
  /** Which schemas and tables are migrated (default: all). */
  readonly filter?: TableFilter;
}

export interface DumpRestoreContext {
  readonly runId: string;
  readonly source: ConnInfo;
  readonly target: ConnInfo;
  readonly pre: Preflight;
  readonly tools: ClientTools;
  readonly opts: DumpRestoreOptions;
  readonly dumpDir: string;
  restoreErrors?: RestoreError[];
  verification?: VerifyResult;
}

/** Arguments for pg_dump. Pure, tested. */
export function pgDumpArgs(ctx: {
  source: ConnInfo;
  dumpDir: string;
  opts: Pick<DumpRestoreOptions, 'jobs' | 'compress'>;
  sourceVersionNum: number;
  sourceInRecovery: boolean;
  /** The run's filter as pg_dump arguments (`dumpFilterArgs`). */
  filter?: readonly string[];
}): string[] {
  const args = [
    '-Fd',
    '-j',
    String(ctx.opts.jobs),
    '-f',
    ctx.dumpDir,
    '-v',
    '--no-tablespaces',
    '--exclude-schema=pgrelocate',
    '-Z',
    String(ctx.opts.compress),
    ...(ctx.filter ?? []),
  ];
  // Synchronized snapshots need 9.2+, and on a standby 10+ (seed 003: Heroku followers).
  if (ctx.sourceVersionNum < 90200 || (ctx.sourceInRecovery && ctx.sourceVersionNum < 100000)) args.push('--no-synchronized-snapshots');
  args.push('-d', libpqUrl(ctx.source));
  return args;
}

/** Arguments for pg_restore. Pure, tested. */
export function pgRestoreArgs(ctx: {
  target: ConnInfo;
  dumpDir: string;
  opts: Pick<DumpRestoreOptions, 'jobs' | 'force' | 'noOwner' | 'noPrivileges'>;
}): string[] {
  const args = ['-Fd', '-j', String(ctx.opts.jobs), '-v', '--no-tablespaces'];
  if (ctx.opts.force) args.push('--clean', '--if-exists');
  if (ctx.opts.noOwner) args.push('--no-owner');
  if (ctx.opts.noPrivileges) args.push('--no-privileges');
  args.push('-d', libpqUrl(ctx.target), ctx.dumpDir);
  return args;
}

function dirBytes(dir: string): number {
  if (!existsSync(dir)) return 0;
  let total = 0;
  for (const f of readdirSync(dir)) {
    const st = statSync(path.join(dir, f));
    total += st.isDirectory() ? dirBytes(path.join(dir, f)) : st.size;
  }
  return total;
}

const globalsStep: Step<DumpRestoreContext> = {
  name: 'globals',
  what: 'roles and memberships (pg_dumpall --globals-only), the target admin role left untouched',
  run: (ctx, emit) => migrateGlobals({ ...ctx, skip: ctx.opts.skipGlobals }, emit),
};

/**
 * Progress of pg_dump / pg_restore in bytes: both print "finished item N TABLE
 * DATA <table>" in verbose mode; each finished table adds its source size.
 */
function tableDataProgress(
  emit: Emit,
  step: string,
  tables: readonly TableInfo[],
): { onStderrLine: (line: string) => void; finish: () => number } {
  const total = tables.reduce((s, t) => s + t.bytes, 0);
  const byName = new Map<string, number>();
  for (const t of tables) byName.set(t.name, (byName.get(t.name) ?? 0) + t.bytes);
  const meter = new ProgressMeter(emit, step, total, 'bytes');
  let done = 0;
  return {
    onStderrLine: (line) => {
      const m = /finished item \d+ TABLE DATA (.+)$/.exec(line);
      if (m) {
        done += byName.get(m[1]!.trim()) ?? 0;
        meter.update(Math.min(done, total), m[1]);
      }
    },
    finish: () => {
      meter.update(total, undefined, true);
      return total;
    },
  };
}

/**
 * Why pg_dump failed, told truthfully: a full local disk is the worker's, not
 * the source's; and the target already holds the roles and pgrelocate's state
 * (no data), which a rerun takes as they are. Pure.
 */
export function dumpFailure(exitCode: number, stderr: string, workDir: string, needBytes: number): PgrelocateError {
  if (/No space left on device|could not (write|extend)[^\n]*space/i.test(stderr)) {
    return new PgrelocateError(
      'disk-full',
      `The disk under ${workDir} filled up during the dump (pg_dump: no space left on device); the target holds the roles and pgrelocate's state, no data`,
      `Free space there, or pass ${opt('workDir')} on a disk with at least ${formatBytes(needBytes)} free, then rerun.`,
    );
  }
  return new PgrelocateError(
    'dump-failed',
    `pg_dump failed (exit ${exitCode}): ${errorLines(stderr)}`,
    "Fix the cause above on the source (privileges, locks, connection limits) and rerun; the target holds only the roles and pgrelocate's state so far.",
  );
}

const dumpStep: Step<DumpRestoreContext> = {
  name: 'dump',
  what: 'pg_dump -Fd -j {jobs} of the source database',
  async run(ctx, emit) {
    rmSync(ctx.dumpDir, { recursive: true, force: true });
    const progress = tableDataProgress(emit, 'dump', ctx.pre.source.database.tables);
    const r = await runTool(
      ctx.tools.pgDump,
      pgDumpArgs({
        source: ctx.source,
        dumpDir: ctx.dumpDir,
        opts: ctx.opts,
        sourceVersionNum: ctx.pre.source.server.versionNum,
        sourceInRecovery: ctx.pre.source.server.inRecovery,
        filter: dumpFilterArgs(ctx.pre.facts.filterPlan),
      }),
      [ctx.source],
      { onStderrLine: progress.onStderrLine },
    );
    if (r.exitCode !== 0) throw dumpFailure(r.exitCode, r.stderr, ctx.opts.workDir, estimateDumpBytes(ctx.pre.source));
    const total = progress.finish();
    return { dir: ctx.dumpDir, bytes: dirBytes(ctx.dumpDir), tableBytes: total, pgDump: ctx.tools.version, jobs: ctx.opts.jobs };
  },
};

const restoreStep: Step<DumpRestoreContext> = {
  name: 'restore',
  what: 'pg_restore -j {jobs} into the target, errors classified expected / real',
  async run(ctx, emit) {
    const progress = tableDataProgress(emit, 'restore', ctx.pre.source.database.tables);
    const first = await restoreSchemasFirst(ctx.tools.pgRestore, ctx.target, pgRestoreArgs(ctx));
    let r: Awaited<ReturnType<typeof runTool>>;
    try {
      r = await runTool(ctx.tools.pgRestore, first.args, [ctx.target], { onStderrLine: progress.onStderrLine });
    } finally {
      first.cleanup();
    }
    const errors = [...first.errors, ...parseRestoreErrors(r.stderr)];
    ctx.restoreErrors = errors;
    const real = errors.filter((e) => !e.expected);
    const expected = errors.filter((e) => e.expected);
    for (const e of expected) emit({ type: 'log', level: 'detail', message: `restore: expected on this target: ${e.message}` });
    if (real.length > 0 || (r.exitCode !== 0 && errors.length === 0)) {
      const shown =
        real.length > 0
          ? real
              .slice(0, 8)
              .map((e) => `${e.message}${e.command ? ` [${e.command.slice(0, 160)}]` : ''}`)
              .join('\n  ')
          : errorLines(r.stderr);
      throw new PgrelocateError(
        'restore-failed',
        `pg_restore reported ${real.length || 'unclassified'} real error(s)${expected.length ? ` (and ${expected.length} expected ones)` : ''}:\n  ${shown}`,
        `Fix the cause on the source or target (missing roles, extensions, privileges), then rerun with ${opt('force')} to replace what was restored.`,
        { errors },
      );
    }
    progress.finish();
    const ownerGrants =
      ctx.opts.noOwner && !ctx.opts.noPrivileges
        ? await grantFormerOwners(ctx.source, ctx.target, ctx.opts.filter, ctx.pre.facts.filterPlan?.excludeSchemas ?? [], emit)
        : undefined;
    return {
      jobs: ctx.opts.jobs,
      expectedErrors: expected.map((e) => ({ message: e.message, reason: e.reason })),
      realErrors: 0,
      ...(ownerGrants !== undefined ? { ownerGrants } : {}),
    };
  },
};

/**
 * With --no-owner every object belongs to the target user, and the roles that
 * owned them on the source lose the rights an owner has implicitly (no ACL
 * records them): the application could no longer use its own tables. Grant
 * each former owner ALL on what it owned, where the role exists on the target.
 */
async function grantFormerOwners(
  source: ConnInfo,
  target: ConnInfo,
  filter: TableFilter | undefined,
  /** The schemas the dump left out whole (quoted, as the filter plan gives them): not on the target. */
  leftOut: readonly string[],
  emit: Emit,
): Promise<number> {
  const owned = await withClient(
    source,
    'source',
    async (c) =>
      (
        await c.query<{ kind: string; name: string; owner: string }>(
          `SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS kind,
                format('%I.%I', n.nspname, c.relname) AS name, pg_get_userbyid(c.relowner) AS owner
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgrelocate')
            AND n.nspname NOT LIKE 'pg\\_%' AND ${filterSql(filter)}
            AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
         UNION ALL
         SELECT 'SCHEMA', format('%I', n.nspname), pg_get_userbyid(n.nspowner) FROM pg_namespace n
          WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgrelocate', 'public') AND n.nspname NOT LIKE 'pg\\_%'
            AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')
            AND '"' || replace(n.nspname, '"', '""') || '"' <> ALL($1::text[])`,
          [leftOut],
        )
      ).rows,
  );
  return withClient(target, 'target', async (c) => {
    const me = (await c.query<{ u: string }>('SELECT current_user AS u')).rows[0]!.u;
    const roles = new Set((await c.query<{ r: string }>('SELECT rolname AS r FROM pg_roles')).rows.map((r) => r.r));
    let granted = 0;
    for (const o of owned) {
      if (o.owner === me || MANAGED_ROLE.test(o.owner) || !roles.has(o.owner)) continue;
      try {
        await c.query(`GRANT ALL ON ${o.kind} ${o.name} TO ${ident(o.owner)}`);
        granted++;
      } catch (e) {
        emit({
          type: 'log',
          level: 'warn',
          message: `--no-owner: could not grant ${o.owner} its former ${o.kind.toLowerCase()} ${o.name}: ${(e as Error).message}`,
        });
      }
    }
    return granted;
  });
}

const databaseSettingsStep: Step<DumpRestoreContext> = {
  name: 'database-settings',
  what: 'ALTER DATABASE … SET, per-role settings in the database, its comment and grants',
  run: (ctx, emit) => applyDatabaseSettings(ctx.source, ctx.target, ctx.pre.target.database.name, emit),
};

const vacuumStep: Step<DumpRestoreContext> = {
  name: 'vacuum-analyze',
  what: 'VACUUM (ANALYZE) every table, {jobs} at a time',
  async run(ctx, emit) {
    const rels = await withClient(ctx.target, 'target', (c) => relationsToAnalyze(c, false));
    await analyzeRelations(ctx.target, rels, { jobs: ctx.opts.jobs, vacuum: true, step: 'vacuum-analyze' }, emit);
    return { relations: rels.length };
  },
};

const verifyStep: Step<DumpRestoreContext> = {
  name: 'verify',
  what: 'row counts, primary key ranges, per-table checksums, sequences, large objects',
  async run(ctx, emit) {
    if (ctx.opts.verify === 'none') return { skipped: true };
    const meter = new ProgressMeter(emit, 'verify', ctx.pre.source.database.tables.length, 'tables');
    const v = await verify(ctx.source, ctx.target, {
      mode: ctx.opts.verify,
      jobs: ctx.opts.jobs,
      onProgress: (d) => meter.update(d),
      ...(ctx.opts.filter ? { filter: ctx.opts.filter } : {}),
    });
    ctx.verification = v;
    if (!v.ok) {
      throw new PgrelocateError(
        'verify-failed',
        `Verification found ${v.mismatches.length} difference(s):\n  ${v.mismatches.slice(0, 10).join('\n  ')}`,
        `Writes may have reached the source during the run (stop them for dump-restore), or the restore was partial; rerun with ${opt('force')} after fixing.`,
        v,
      );
    }
    return {
      mode: v.mode,
      tables: v.tables.length,
      rows: v.rows,
      sequences: v.sequences.length,
      largeObjects: v.largeObjects.source,
      seconds: v.seconds,
    };
  },
};

export const DUMP_RESTORE_STEPS: readonly Step<DumpRestoreContext>[] = [
  globalsStep,
  dumpStep,
  restoreStep,
  databaseSettingsStep,
  vacuumStep,
  verifyStep,
];
