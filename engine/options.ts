/**
 * Every option, defined once: its CLI flag, whether Pulumi sets it (under
 * `pgrelocate:options`), what a valid value looks like, its default and the
 * commands that take it. The CLI's flags, the Pulumi options schema, the
 * worker's command line, the names fixes use and the engine's defaults all
 * come from this table. Pure: zod and size parsing only, so the Pulumi
 * program may load it.
 */
import { z } from 'zod';
import type { StreamingOptions } from './streaming/options';
import type { DumpRestoreOptions } from './strategies/dump-restore/dump-restore';
import { parseSize } from './units';

export type Command = 'check' | 'plan' | 'migrate' | 'sync' | 'copy' | 'cutover' | 'rollback';
const RUN: readonly Command[] = ['migrate', 'sync', 'copy', 'cutover'];
/** The commands that choose what a run migrates; later ones (cutover, status, verify) use what the run recorded. */
const FILTERED: readonly Command[] = ['check', 'plan', 'migrate', 'sync', 'copy'];
/** The commands that take a set of databases (status, verify and cleanup take the same flags on their own). */
const CLUSTER: readonly Command[] = ['check', 'plan', 'migrate', 'sync', 'copy', 'cutover'];

/** A whole number in [min, max], written as a number (Pulumi) or as text (CLI). */
const whole = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .union([
      z.number(),
      z
        .string()
        .regex(/^\s*\d+\s*$/)
        .transform(Number),
    ])
    .pipe(z.number().int().min(min).max(max));
/** A size: "16MB", "2GB", or bytes as a number. */
const size = z.union([
  z.number().int().nonnegative(),
  z.string().refine((v) => {
    try {
      parseSize(v);
      return true;
    } catch {
      return false;
    }
  }),
]);
/** Names: comma-separated (CLI) or a list (Pulumi). */
const names = z.union([
  z
    .string()
    .transform((v) => v.split(',').map((x) => x.trim()))
    .pipe(z.array(z.string().min(1)).min(1)),
  z.array(z.string().min(1)).min(1),
]);
/** A repeatable pattern: one (CLI, each flag) or a list (Pulumi). */
const patterns = z.union([
  z
    .string()
    .min(1)
    .transform((v) => [v]),
  z.array(z.string().min(1)),
]);
const onOff = z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]);
const text = z.string().min(1);

export interface OptionSpec {
  /** The CLI flag with its argument (`--max-lag <size>`); without one it is a switch. Null: Pulumi only. */
  readonly flag: string | null;
  readonly help: string;
  /** What a valid value looks like, for the error. */
  readonly expect: string;
  /** Reads what the user wrote: a CLI argument (text) or a Pulumi config value. */
  readonly value: z.ZodType;
  /** The default, as the user would write it; written here only. */
  readonly default?: string | number | boolean;
  readonly choices?: readonly string[];
  /** The flag may be given more than once; the values are collected in a list. */
  readonly repeat?: true;
  /** An environment variable the CLI reads it from. */
  readonly env?: string;
  /** Pulumi sets it as `pgrelocate:options.<name>`. */
  readonly pulumi?: true;
  readonly commands: readonly Command[];
  /** Only strategies of this kind use it (default: all). */
  readonly only?: 'streaming' | 'dump-restore';
}

export const OPTIONS = {
  jobs: {
    flag: '--jobs <n>',
    help: 'parallel jobs for copy, index builds, dump, restore, vacuum and verify (default: cores, at least 2)',
    expect: 'a whole number from 1 up',
    value: whole(1),
    pulumi: true,
    commands: ['plan', ...RUN],
  },
  workDir: {
    flag: '--work-dir <dir>',
    help: 'scratch directory for dumps and schema files (default: the system temporary directory)',
    expect: 'a directory',
    value: text,
    commands: ['check', ...RUN],
  },
  force: {
    flag: '--force',
    help: 'allow a non-empty target: objects the migration brings replace existing ones',
    expect: 'true or false',
    value: onOff,
    commands: ['check', 'plan', ...RUN],
  },
  allDatabases: {
    flag: '--all-databases',
    help: "every database of the source (less templates, a managed service's own, and an empty postgres): roles once, each database created on the target and moved, one cutover for all",
    expect: 'true or false',
    value: onOff,
    commands: CLUSTER,
  },
  databases: {
    flag: '--databases <names>',
    help: 'these databases of the source, comma-separated, as --all-databases does',
    expect: 'database names, comma-separated',
    value: names,
    commands: CLUSTER,
  },
  includeSchema: {
    flag: '--include-schema <pattern>',
    help: 'migrate only the schemas matching (repeatable; pg_dump\'s patterns: * and ?, "Quoted" for case)',
    expect: 'a schema name or pattern',
    value: patterns,
    repeat: true,
    pulumi: true,
    commands: FILTERED,
  },
  excludeSchema: {
    flag: '--exclude-schema <pattern>',
    help: 'leave out the schemas matching (repeatable)',
    expect: 'a schema name or pattern',
    value: patterns,
    repeat: true,
    pulumi: true,
    commands: FILTERED,
  },
  includeTable: {
    flag: '--include-table <pattern>',
    help: 'migrate only the tables, views and sequences matching, as schema.table or table (repeatable); a partitioned table brings its partitions, a table its sequences',
    expect: 'a table name or pattern',
    value: patterns,
    repeat: true,
    pulumi: true,
    commands: FILTERED,
  },
  excludeTable: {
    flag: '--exclude-table <pattern>',
    help: 'leave out the tables, views and sequences matching (repeatable)',
    expect: 'a table name or pattern',
    value: patterns,
    repeat: true,
    pulumi: true,
    commands: FILTERED,
  },
  filterFile: {
    flag: '--filter-file <path>',
    help: "the filters from a file: one '<include|exclude>-<schema|table> <pattern>' per line, or pgcopydb's [sections]",
    expect: 'a file path',
    value: text,
    commands: FILTERED,
  },
  skipGlobals: { flag: '--skip-globals', help: 'do not migrate roles', expect: 'true or false', value: onOff, commands: RUN },
  replicaIdentityFull: {
    flag: '--replica-identity-full',
    help: 'allow REPLICA IDENTITY FULL on source tables without a usable key (restored at cleanup)',
    expect: 'true or false',
    value: onOff,
    pulumi: true,
    commands: ['check', 'plan', ...RUN],
    only: 'streaming',
  },
  splitLargerThan: {
    flag: '--split-larger-than <size>',
    help: 'copy tables larger than this in parallel ranges (default: automatic, 64MB–1GB)',
    expect: 'a size such as 16MB, 2GB or 4096 (bytes)',
    value: size,
    pulumi: true,
    commands: RUN,
    only: 'streaming',
  },
  sourceUrlFromTarget: {
    flag: '--source-url-from-target <url>',
    help: 'the source URL as the target server reaches it, if different',
    expect: 'a postgresql:// URL',
    value: text,
    commands: RUN,
    only: 'streaming',
  },
  maxLag: {
    flag: '--max-lag <size>',
    help: 'cutover starts only within this much WAL of the source',
    expect: 'a size such as 16MB, 2GB or 4096 (bytes)',
    value: size,
    default: '16MB',
    pulumi: true,
    commands: [...RUN, 'rollback'],
    only: 'streaming',
  },
  catchUpTimeout: {
    flag: '--catch-up-timeout <seconds>',
    help: 'how long sync waits for catch-up, and cutover for the lag gate',
    expect: 'a whole number of seconds',
    value: whole(0),
    default: 600,
    pulumi: true,
    commands: [...RUN, 'rollback'],
    only: 'streaming',
  },
  applyTimeout: {
    flag: '--apply-timeout <seconds>',
    help: 'how long cutover waits for the final LSN once writes are fenced',
    expect: 'a whole number of seconds',
    value: whole(0),
    default: 60,
    pulumi: true,
    commands: [...RUN, 'rollback'],
    only: 'streaming',
  },
  maxBlackout: {
    flag: '--max-blackout <seconds>',
    help: 'the guardrail: a cutover whose write fence lasts longer is rolled back by itself, the source writable and replication kept',
    expect: 'a whole number of seconds',
    value: whole(1),
    default: 15,
    pulumi: true,
    commands: ['plan', ...RUN, 'rollback'],
    only: 'streaming',
  },
  verify: {
    flag: '--verify <mode>',
    help: "verification (default: checksum for dump-restore; count for cutover, at a pinned point before its fence; count for copy, from COPY's command tags while the source's server wrote nothing since the snapshot)",
    expect: 'checksum, count or none',
    value: z.enum(['checksum', 'count', 'none']),
    choices: ['checksum', 'count', 'none'],
    pulumi: true,
    commands: RUN,
  },
  preHook: {
    flag: '--pre-hook <command>',
    help: 'shell command run before the write fence (maintenance on, scale to zero)',
    expect: 'a shell command',
    value: text,
    pulumi: true,
    commands: RUN,
    only: 'streaming',
  },
  postHook: {
    flag: '--post-hook <command>',
    help: 'shell command run after the switch (point the app at the target, scale up)',
    expect: 'a shell command',
    value: text,
    pulumi: true,
    commands: RUN,
    only: 'streaming',
  },
  batchSize: {
    flag: '--batch-size <n>',
    help: 'pglogical: tables added to the replication sets per batch (default: all at once)',
    expect: 'a whole number from 1 up',
    value: whole(1),
    pulumi: true,
    commands: RUN,
    only: 'streaming',
  },
  batchPause: {
    flag: '--batch-pause <seconds>',
    help: 'pglogical: pause between batches once a batch replicates',
    expect: 'a whole number of seconds',
    value: whole(0),
    pulumi: true,
    commands: RUN,
    only: 'streaming',
  },
  bucardoUrl: {
    flag: '--bucardo-url <url>',
    help: "bucardo: a superuser of the PostgreSQL (with PL/Perl) that holds Bucardo's control database",
    expect: 'a postgresql:// URL',
    value: text,
    env: 'PGRELOCATE_BUCARDO_URL',
    commands: RUN,
    only: 'streaming',
  },
  rollback: {
    flag: '--rollback',
    help: 'arm reverse replication at the switch (native logical replication, whatever the strategy), so pgrelocate rollback can move the application back with nothing written on the new server lost',
    expect: 'true or false',
    value: onOff,
    commands: ['migrate', 'cutover'],
    only: 'streaming',
    pulumi: true,
  },
  pgbouncerAdmin: {
    flag: '--pgbouncer-admin <url>',
    help: "cutover through PgBouncer: its admin console (database pgbouncer, an admin_users user); the application's transactions wait in the pooler instead of failing",
    expect: 'a postgresql:// URL',
    value: text,
    env: 'PGRELOCATE_PGBOUNCER_ADMIN_URL',
    commands: ['migrate', 'cutover', 'rollback'],
    only: 'streaming',
  },
  pgbouncerIni: {
    flag: '--pgbouncer-ini <path>',
    help: "PgBouncer's configuration file with the database's [databases] entry, which the cutover points at the target",
    expect: 'a file path',
    value: text,
    commands: ['migrate', 'cutover', 'rollback'],
    only: 'streaming',
  },
  pgbouncerDatabase: {
    flag: '--pgbouncer-database <name>',
    help: "the database's name in PgBouncer (default: the source database's name)",
    expect: 'a name',
    value: text,
    commands: ['migrate', 'cutover', 'rollback'],
    only: 'streaming',
  },
  bucardoParallelCopy: {
    flag: '--bucardo-parallel-copy',
    help: "bucardo: pgrelocate's parallel copy for the first data, Bucardo for the changes only",
    expect: 'true or false',
    value: onOff,
    pulumi: true,
    commands: RUN,
    only: 'streaming',
  },
  noOwner: {
    flag: '--no-owner',
    help: 'dump-restore: restore without object owners (everything owned by the target user)',
    expect: 'true or false',
    value: onOff,
    commands: ['migrate'],
    only: 'dump-restore',
  },
  noPrivileges: {
    flag: '--no-privileges',
    help: 'dump-restore: restore without GRANTs',
    expect: 'true or false',
    value: onOff,
    commands: ['migrate'],
    only: 'dump-restore',
  },
  compress: {
    flag: '--compress <level>',
    help: 'dump-restore: pg_dump compression level, 0-9',
    expect: 'a whole number from 0 to 9',
    value: whole(0, 9),
    default: 0,
    commands: ['migrate'],
    only: 'dump-restore',
  },
  keepDump: {
    flag: '--keep-dump',
    help: 'dump-restore: keep the dump directory after success',
    expect: 'true or false',
    value: onOff,
    commands: ['migrate'],
    only: 'dump-restore',
  },
  waitSeconds: {
    flag: null,
    help: 'how long `pulumi up` waits for a phase before it returns with the run still going on the worker',
    expect: 'a whole number of seconds from 1 up',
    value: whole(1),
    default: 3600,
    pulumi: true,
    commands: [],
  },
} as const satisfies Record<string, OptionSpec>;

export type OptionName = keyof typeof OPTIONS;
export const OPTION_NAMES = Object.keys(OPTIONS) as OptionName[];

/** The values as the user wrote them, checked: what the front ends pass around. */
export type OptionValues = { -readonly [K in OptionName]?: z.output<(typeof OPTIONS)[K]['value']> };

/** The options a command takes, in the table's order. */
export function optionsOf(command: Command): OptionName[] {
  return OPTION_NAMES.filter((n) => (OPTIONS[n].commands as readonly Command[]).includes(command));
}

/** The options Pulumi sets under `pgrelocate:options`. */
export const PULUMI_OPTIONS = OPTION_NAMES.filter((n) => (OPTIONS[n] as OptionSpec).pulumi === true);

/** Check one value; the error is "must be <what a valid value looks like>". */
export function readOption<K extends OptionName>(name: K, raw: unknown): OptionValues[K] {
  const r = OPTIONS[name].value.safeParse(raw);
  if (!r.success) throw new Error(`must be ${OPTIONS[name].expect}`);
  return r.data as OptionValues[K];
}

/** The flag without its argument: `--max-lag`. */
export function flagOf(name: OptionName): string | null {
  return OPTIONS[name].flag?.split(' ')[0] ?? null;
}

/**
 * The zod schema of `pgrelocate:options`, from the table: each Pulumi option,
 * no others (an unknown key is an error), a number accepted for a size or a
 * count written as text.
 */
export function pulumiOptionsSchema() {
  const shape = Object.fromEntries(PULUMI_OPTIONS.map((n) => [n, OPTIONS[n].value.optional()])) as {
    [K in OptionName]: z.ZodOptional<(typeof OPTIONS)[K]['value']>;
  };
  return z.object(shape).strict();
}

/** The values of `pgrelocate:options`, checked. */
export type PulumiOptionValues = z.output<ReturnType<typeof pulumiOptionsSchema>>;

/**
 * The command line that sets these values, in the table's order: what the
 * worker runs. Only the options `command` and the kind of strategy take, and the user set.
 */
export function commandLine(values: OptionValues, command: Command, streaming: boolean): string[] {
  const args: string[] = [];
  for (const name of optionsOf(command)) {
    const only = (OPTIONS[name] as OptionSpec).only;
    if (only && only !== (streaming ? 'streaming' : 'dump-restore')) continue;
    const v = values[name];
    const flag = flagOf(name);
    if (v === undefined || flag === null) continue;
    if (Array.isArray(v) && !(OPTIONS[name] as OptionSpec).repeat) args.push(flag, (v as unknown[]).join(','));
    else if (Array.isArray(v)) for (const x of v as unknown[]) args.push(flag, String(x));
    else if ((OPTIONS[name] as OptionSpec).flag?.includes('<')) args.push(flag, String(v));
    else if (v === true) args.push(flag);
  }
  return args;
}

/** A size option's bytes. */
export function bytesOf(v: string | number): number {
  return typeof v === 'number' ? v : parseSize(v);
}

/** The default of an option that has one, as the engine uses it. */
export function defaultOf<K extends keyof typeof OPTIONS>(name: K): z.output<(typeof OPTIONS)[K]['value']> {
  return readOption(name, (OPTIONS[name] as OptionSpec).default) as z.output<(typeof OPTIONS)[K]['value']>;
}

/**
 * The engine's options from checked values (defaults are the engine's own,
 * from this table). URL options are left to the front end, which parses them.
 */
export function engineOptions(v: OptionValues): EngineOptions {
  const out: Record<string, unknown> = {
    jobs: v.jobs,
    workDir: v.workDir,
    force: v.force,
    skipGlobals: v.skipGlobals,
    replicaIdentityFull: v.replicaIdentityFull,
    splitBytes: v.splitLargerThan === undefined ? undefined : bytesOf(v.splitLargerThan),
    maxLagBytes: v.maxLag === undefined ? undefined : bytesOf(v.maxLag),
    catchUpTimeout: v.catchUpTimeout,
    applyTimeout: v.applyTimeout,
    maxBlackout: v.maxBlackout,
    rollback: v.rollback,
    verify: v.verify,
    preHook: v.preHook,
    postHook: v.postHook,
    batchSize: v.batchSize,
    batchPause: v.batchPause,
    bucardoParallelCopy: v.bucardoParallelCopy,
    noOwner: v.noOwner,
    noPrivileges: v.noPrivileges,
    compress: v.compress,
    keepDump: v.keepDump,
    filter:
      v.includeSchema || v.excludeSchema || v.includeTable || v.excludeTable
        ? {
            includeSchema: v.includeSchema ?? [],
            excludeSchema: v.excludeSchema ?? [],
            includeTable: v.includeTable ?? [],
            excludeTable: v.excludeTable ?? [],
          }
        : undefined,
  };
  return Object.fromEntries(Object.entries(out).filter(([, x]) => x !== undefined)) as EngineOptions;
}

/** What `engineOptions` gives: the streaming strategies' and dump-restore's options, each optional. */
export type EngineOptions = Partial<
  Omit<StreamingOptions, 'sourceForTarget' | 'bucardoUrl' | 'preflight' | 'pgbouncer'> & DumpRestoreOptions
>;

/** The options table as Markdown, for docs/options.md (a test keeps the two the same). Pure. */
export function optionsMarkdown(): string {
  const rows = OPTION_NAMES.map((n) => {
    const s: OptionSpec = OPTIONS[n];
    const cell = (x: string) => x.replace(/\|/g, '\\|');
    return `| ${s.flag ? `\`${cell(s.flag)}\`` : '—'} | ${s.pulumi ? `\`${n}\`` : '—'} | ${cell(s.help)} | ${cell(s.expect)} | ${
      s.default !== undefined ? `\`${String(s.default)}\`` : ''
    } | ${s.commands.join(', ') || 'Pulumi only'}${s.only ? ` (${s.only})` : ''} |`;
  });
  return [
    '# Options',
    '',
    'Every option of pgrelocate, from its one definition (`engine/options.ts`). The CLI takes the flag;',
    'a Pulumi stack sets the key under `pgrelocate:options` (any other key there is refused, naming these).',
    'A Pulumi value may be written as a number where text is expected and unambiguous (`maxLag: 16` is 16 bytes).',
    '',
    '| CLI flag | `pgrelocate:options` key | what it does | a valid value | default | commands |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}
