/**
 * One entry point per command for every strategy: the front ends (CLI,
 * Pulumi run driver, rehearsal) call these, and each dispatches on the
 * strategy with an exhaustive switch. Adding a strategy means a directory
 * beside these and a case in each switch, which the compiler asks for.
 */
import type { ConnInfo } from '../conn';
import { PgrelocateError } from '../errors';
import { opt } from '../option-names';
import { migrate as dumpRestore, type MigrateOptions, type MigrationReport } from './dump-restore/run';
import type { Emit, Step } from '../runner';
import { describeCutover, runCutover, runPinnedVerify, type CutoverReport } from '../streaming/cutover';
import type { PinnedVerification } from '../streaming/pinned';
import { runRollback, type RollbackReport } from '../streaming/rollback';
import { runCleanup, runStatus, type StreamingStatus } from '../streaming/cleanup';
import type { CleanupOptions, StreamingHooks } from '../streaming/hooks';
import type { StreamingOptions } from '../streaming/options';
import { DUMP_RESTORE_STEPS } from './dump-restore/dump-restore';
import { bucardo, bucardoSync, type BucardoSyncReport } from './bucardo';
import { stepsFor as bucardoSteps } from './bucardo/sync';
import { logical, sync as logicalSync, type SyncReport } from './logical';
import { LOGICAL_STEPS } from './logical/sync';
import { pglogical, pglogicalSync, type PglogicalSyncReport } from './pglogical';
import { PGLOGICAL_STEPS } from './pglogical/sync';
import { unhandled, type Strategy, type StreamingStrategy } from './names';

export { STRATEGIES, STREAMING_STRATEGIES, isStreaming, type Strategy, type StreamingStrategy } from './names';
export type { CutoverReport } from '../streaming/cutover';
export type { StreamingStatus } from '../streaming/cleanup';

/**
 * The cutover, cleanup and status hooks of a streaming strategy. Each is typed
 * with its own run meta; they are picked by the strategy the run recorded, so
 * the meta they get is theirs.
 */
export function streamingHooks(s: StreamingStrategy): StreamingHooks {
  switch (s) {
    case 'logical':
      return logical;
    case 'pglogical':
      return pglogical as unknown as StreamingHooks;
    case 'bucardo':
      return bucardo as unknown as StreamingHooks;
    default:
      return unhandled(s);
  }
}

/** Every streaming strategy's hooks, in the order cleanup removes their artefacts (Bucardo's daemon first). */
const ALL_STREAMING: readonly StreamingHooks[] = (['bucardo', 'logical', 'pglogical'] as const).map(streamingHooks);

export type SyncOutcome =
  | { readonly strategy: 'logical'; readonly report: SyncReport }
  | { readonly strategy: 'pglogical'; readonly report: PglogicalSyncReport }
  | { readonly strategy: 'bucardo'; readonly report: BucardoSyncReport };

/** `sync`: copy, then stream, with the given strategy. Idempotent: an interrupted sync resumes; a streaming one returns at once. */
export async function sync(
  strategy: StreamingStrategy,
  source: ConnInfo,
  target: ConnInfo,
  options: Partial<StreamingOptions>,
  emit: Emit = () => undefined,
): Promise<SyncOutcome> {
  switch (strategy) {
    case 'logical':
      return { strategy, report: await logicalSync(source, target, options, emit) };
    case 'pglogical':
      return { strategy, report: await pglogicalSync(source, target, options, emit) };
    case 'bucardo': {
      if (!options.bucardoUrl)
        throw new PgrelocateError(
          'usage',
          'The bucardo strategy needs a server for its control database.',
          `Pass ${opt('bucardoUrl')} (or PGRELOCATE_BUCARDO_URL): a superuser of a PostgreSQL with PL/Perl (Debian: postgresql-plperl-15 bucardo).`,
        );
      return { strategy, report: await bucardoSync(source, target, options.bucardoUrl, options, emit) };
    }
    default:
      return unhandled(strategy);
  }
}

/** `cutover` of the streaming run recorded on the target, whichever strategy it has. */
export function cutover(
  source: ConnInfo,
  target: ConnInfo,
  options: Partial<StreamingOptions>,
  emit: Emit = () => undefined,
): Promise<CutoverReport> {
  return runCutover(source, target, options, emit, streamingHooks);
}

/** `rollback` of a run cut over with `rollback`: the application back on the old source, nothing written on the new one lost. */
export function rollback(
  source: ConnInfo,
  target: ConnInfo,
  options: Partial<StreamingOptions>,
  emit: Emit = () => undefined,
): Promise<RollbackReport> {
  return runRollback(source, target, options, emit);
}

/** `verify` of the streaming run recorded on the target, at a pinned point; null when none is streaming. */
export function verifyStreaming(
  source: ConnInfo,
  target: ConnInfo,
  options: Partial<StreamingOptions> & { readonly mode: 'count' | 'checksum' },
  emit: Emit = () => undefined,
): Promise<PinnedVerification | null> {
  return runPinnedVerify(source, target, options, emit, streamingHooks);
}

/** `cleanup`: every artefact of every strategy on these two databases, and the state. */
export function cleanup(source: ConnInfo, target: ConnInfo, opts: CleanupOptions = {}): Promise<string[]> {
  return runCleanup(source, target, opts, ALL_STREAMING);
}

/** `status` of the streaming run recorded on the target. */
export function status(source: ConnInfo | null, target: ConnInfo): Promise<StreamingStatus> {
  return runStatus(source, target, streamingHooks);
}

interface StreamingMigration<S extends StreamingStrategy> {
  readonly strategy: S;
  readonly sync: SyncOutcome;
  readonly cutover: CutoverReport;
}

export type MigrateOutcome =
  | { readonly strategy: 'dump-restore'; readonly report: MigrationReport }
  | StreamingMigration<'logical'>
  | StreamingMigration<'pglogical'>
  | StreamingMigration<'bucardo'>;

/** `migrate`, the whole way: dump-restore's one run, or a streaming strategy's sync followed by its cutover. */
export async function migrate<S extends Strategy>(
  strategy: S,
  source: ConnInfo,
  target: ConnInfo,
  options: { readonly dumpRestore?: MigrateOptions; readonly streaming?: Partial<StreamingOptions> },
  emit: Emit = () => undefined,
): Promise<Extract<MigrateOutcome, { strategy: S }>> {
  return (await migrateAny(strategy, source, target, options, emit)) as Extract<MigrateOutcome, { strategy: S }>;
}

async function migrateAny(
  strategy: Strategy,
  source: ConnInfo,
  target: ConnInfo,
  options: { readonly dumpRestore?: MigrateOptions; readonly streaming?: Partial<StreamingOptions> },
  emit: Emit,
): Promise<MigrateOutcome> {
  switch (strategy) {
    case 'dump-restore':
      return { strategy, report: await dumpRestore(source, target, { ...options.dumpRestore, strategy }, emit) };
    case 'logical':
    case 'pglogical':
    case 'bucardo': {
      const s = await sync(strategy, source, target, options.streaming ?? {}, emit);
      return { strategy, sync: s, cutover: await cutover(source, target, options.streaming ?? {}, emit) };
    }
    default:
      return unhandled(strategy);
  }
}

/** The steps a run of this strategy takes, each with what it does, from the steps themselves. Pure. */
export function describeSteps(
  strategy: Strategy,
  o: { readonly jobs: number; readonly bucardoParallelCopy?: boolean },
): { name: string; what: string }[] {
  const list = (steps: readonly Step<never>[]): { name: string; what: string }[] =>
    steps.map((s) => ({ name: s.name, what: (s.what ?? '').replaceAll('{jobs}', String(o.jobs)) }));
  const withCutover = (s: StreamingStrategy, steps: readonly Step<never>[]) => [
    ...list(steps),
    { name: 'cutover', what: describeCutover(streamingHooks(s)) },
  ];
  switch (strategy) {
    case 'dump-restore':
      return list(DUMP_RESTORE_STEPS);
    case 'logical':
      return withCutover(strategy, LOGICAL_STEPS);
    case 'pglogical':
      return withCutover(strategy, PGLOGICAL_STEPS);
    case 'bucardo':
      return withCutover(strategy, bucardoSteps(o.bucardoParallelCopy ?? false));
    default:
      return unhandled(strategy);
  }
}
