/**
 * A strategy is an ordered list of steps. The runner runs them, times each,
 * records each in the target's state schema, emits progress events, and stops
 * at the first failure.
 */
import type { RunState } from './state';

export type RunEvent =
  | { readonly type: 'step'; readonly name: string; readonly status: 'start' | 'done' | 'failed'; readonly seconds?: number }
  | {
      readonly type: 'progress';
      readonly step: string;
      readonly done: number;
      readonly total: number;
      readonly unit: ProgressUnit;
      readonly etaSeconds: number | null;
      readonly note?: string;
    }
  /** `detail`: one line per object (an index built, an expected restore error), shown with --verbose. */
  | { readonly type: 'log'; readonly level: 'detail' | 'info' | 'warn'; readonly message: string };

export type Emit = (e: RunEvent) => void;

export type ProgressUnit = 'bytes' | 'tables' | 'rows' | 'indexes';

export interface Step<C> {
  readonly name: string;
  /** What the step does, for `plan` (`{jobs}` stands for the number of parallel jobs). */
  readonly what?: string;
  /** Returns a JSON-able detail for the report. */
  run(ctx: C, emit: Emit): Promise<unknown>;
}

export interface StepResult {
  readonly name: string;
  readonly status: 'done' | 'failed';
  readonly seconds: number;
  readonly detail: unknown;
  readonly error?: string;
}

/** Progress with an ETA from the average rate so far. */
export class ProgressMeter {
  private readonly started = Date.now();
  private lastEmit = 0;

  constructor(
    private readonly emit: Emit,
    private readonly step: string,
    readonly total: number,
    private readonly unit: ProgressUnit,
    private readonly everyMs = 1000,
  ) {}

  update(done: number, note?: string, force = false): void {
    const now = Date.now();
    // The last update always shows, so a bar ends at 100%.
    if (!force && done < this.total && now - this.lastEmit < this.everyMs) return;
    this.lastEmit = now;
    const elapsed = (now - this.started) / 1000;
    const rate = elapsed > 0 ? done / elapsed : 0;
    const eta = rate > 0 && this.total > done ? (this.total - done) / rate : done >= this.total ? 0 : null;
    this.emit({ type: 'progress', step: this.step, done, total: this.total, unit: this.unit, etaSeconds: eta, ...(note ? { note } : {}) });
  }
}

/**
 * Run the steps in order; stop at the first failure and throw its error.
 * `results` (the caller's, when it needs them after a failure) gets each step's result, the failed one included.
 */
export async function runSteps<C>(
  steps: readonly Step<C>[],
  ctx: C,
  emit: Emit,
  state?: RunState,
  results: StepResult[] = [],
): Promise<StepResult[]> {
  for (const step of steps) {
    emit({ type: 'step', name: step.name, status: 'start' });
    await state?.stepStarted(step.name);
    const t0 = Date.now();
    try {
      const detail = await step.run(ctx, state ? recordProgress(emit, state, step.name, t0) : emit);
      const seconds = (Date.now() - t0) / 1000;
      results.push({ name: step.name, status: 'done', seconds, detail });
      await state?.stepFinished(step.name, 'done', { seconds, detail });
      emit({ type: 'step', name: step.name, status: 'done', seconds });
    } catch (e) {
      const seconds = (Date.now() - t0) / 1000;
      const message = (e as Error).message ?? String(e);
      results.push({ name: step.name, status: 'failed', seconds, detail: (e as { detail?: unknown }).detail ?? null, error: message });
      await state?.stepFinished(step.name, 'failed', { seconds, error: message }).catch(() => undefined);
      emit({ type: 'step', name: step.name, status: 'failed', seconds });
      throw e;
    }
  }
  return results;
}

/** What `status` shows of a running step: where its progress meter stood at `at`. */
export interface StepProgress {
  readonly done: number;
  readonly total: number;
  readonly unit: ProgressUnit;
  readonly etaSeconds: number | null;
  /** Units per second since the step started. */
  readonly rate: number;
  readonly note?: string;
  readonly at: string;
}

/**
 * Pass events on, and write the step's progress into the state every few
 * seconds, so `pgrelocate status` in another terminal sees bytes, rate and ETA.
 * A write that fails is dropped: progress must never fail the step.
 */
export function recordProgress(emit: Emit, state: RunState, step: string, startedAt: number, everyMs = 2000): Emit {
  let last = 0;
  return (e) => {
    emit(e);
    // Only the step's own meter: a phase running beside it (index builds during the copy) has its own line.
    if (e.type !== 'progress' || e.step !== step) return;
    const now = Date.now();
    if (now - last < everyMs && e.done < e.total) return;
    last = now;
    const p: StepProgress = {
      done: e.done,
      total: e.total,
      unit: e.unit,
      etaSeconds: e.etaSeconds,
      rate: now > startedAt ? e.done / ((now - startedAt) / 1000) : 0,
      ...(e.note ? { note: e.note } : {}),
      at: new Date(now).toISOString(),
    };
    state.stepProgress(step, p).catch(() => undefined);
  };
}
