/**
 * What a streaming strategy gives the shared core: its cutover hooks, its
 * cleanup and its status. The core (sync driver, fence, cutover skeleton,
 * cleanup sweep) calls these and imports no strategy.
 */
import type pg from 'pg';
import type { ConnInfo } from '../conn';
import type { Emit, Step } from '../runner';
import type { StreamingStrategy } from '../strategies/names';
import type { StreamingMeta, StreamingOptions } from './options';
import type { Lag } from './subscription';

/** What every cutover step sees: both endpoints, a session on each, the run's options and meta. */
export interface CutoverContext<M extends StreamingMeta = StreamingMeta> {
  readonly source: ConnInfo;
  readonly target: ConnInfo;
  readonly opts: StreamingOptions;
  readonly meta: M;
  readonly runId: string;
  /** A source session whose own transactions stay writable through the fence. */
  readonly src: pg.Client;
  readonly dst: pg.Client;
}

export interface CleanupOptions {
  /** Lift a write fence a cutover left behind. */
  readonly unfence?: boolean;
  /** bucardo: the control server's superuser, to drop a control database pgrelocate installed. */
  readonly bucardoUrl?: ConnInfo;
}

/** What `status` adds to the run record. */
export interface StatusDetail {
  readonly lag: Lag | null;
  readonly targetLagSeconds: number | null;
  /** bucardo: its sync's state as `bucardo status` reports it. */
  readonly bucardo?: Readonly<Record<string, string>>;
}

export interface StreamingHooks<M extends StreamingMeta = StreamingMeta> {
  readonly name: StreamingStrategy;
  /** Before the fence: resolve once the target is close enough; throw `lag-too-high` otherwise (nothing fenced yet). */
  lagGate(ctx: CutoverContext<M>, emit: Emit): Promise<unknown>;
  /** An application_name LIKE pattern of sessions the fence spares: the replication's own writers. */
  readonly fenceSpares?: string;
  /** Steps inside the fence before the final sync. */
  readonly fencedSteps?: readonly Step<CutoverContext<M>>[];
  /** Inside the fence: bring the target up to the last change committed before it. */
  readonly finalSync: Step<CutoverContext<M>>;
  /** Tables replication does not carry in full: copied again, whole, inside the fence (see recopyUnreplicated). */
  recopy(meta: M): readonly string[];
  /**
   * true when replication writes nothing into the `recopy` tables: they are
   * then copied before the fence, and inside it only if written since.
   */
  readonly recopyUnreplicated?: boolean;
  /** Once the target is verified: remove the replication on both sides. */
  removeReplication(ctx: CutoverContext<M>): Promise<void>;
  /**
   * Remove this strategy's artefacts from both sides: by the run's meta when
   * the run is this strategy's, else (meta null) whatever carries pgrelocate's names.
   */
  cleanup(src: pg.Client, dst: pg.Client, meta: M | null, opts: CleanupOptions): Promise<string[]>;
  /** How far behind the target is, in this strategy's terms. */
  status(source: ConnInfo | null, target: ConnInfo, meta: M): Promise<StatusDetail>;
}
