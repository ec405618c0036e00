/**
 * Rendering of run events for a person: on a terminal, one live bar per phase
 * that is under way (the copy and the index builds beside it each have
 * theirs), with log lines printed above the bars; plain lines otherwise (CI
 * logs, pipes, files). One line per object only with `verbose`.
 */
import cliProgress from 'cli-progress';
import { formatEvent } from '../engine/report';
import type { Emit, RunEvent } from '../engine/runner';
import { formatBytes, formatDuration } from '../engine/units';

export interface ProgressViewOptions {
  readonly stream?: NodeJS.WriteStream;
  /** Force plain lines even on a terminal. */
  readonly plain?: boolean;
  /** Show one line per object (`detail` events): an index built, an expected restore error. */
  readonly verbose?: boolean;
}

type Progress = Extract<RunEvent, { type: 'progress' }>;

/** The text of a bar's payload for one progress event. Pure. */
export function barPayload(e: Progress): { amount: string; eta_text: string; note: string } {
  const fmt = (v: number): string => (e.unit === 'bytes' ? formatBytes(v) : `${v} ${e.unit}`);
  return {
    amount: `${fmt(e.done)} / ${fmt(e.total)}`,
    eta_text: e.done >= e.total ? 'done' : e.etaSeconds === null ? '?' : formatDuration(e.etaSeconds),
    note: e.note ?? '',
  };
}

export function progressView(opts: ProgressViewOptions = {}): Emit {
  const stream = opts.stream ?? process.stderr;
  const line = (text: string): void => void stream.write(text + '\n');
  const shown = (e: RunEvent): boolean => opts.verbose === true || e.type !== 'log' || e.level !== 'detail';
  if (opts.plain || !stream.isTTY)
    return (e) => {
      if (shown(e)) line(formatEvent(e));
    };
  let multi: cliProgress.MultiBar | null = null;
  const bars = new Map<string, cliProgress.SingleBar>();
  // Every bar ended: the bars stay on screen as they finished, and plain lines follow them.
  const endAll = (): void => {
    multi?.stop();
    multi = null;
    bars.clear();
  };
  return (e) => {
    if (!shown(e)) return;
    if (e.type !== 'progress') {
      // A step that ends ends its bar, and any phase that ran inside it; its line follows them.
      if (e.type === 'step' && e.status !== 'start') endAll();
      // cli-progress prints a log line above the bars at its next redraw.
      if (multi) multi.log(formatEvent(e) + '\n');
      else line(formatEvent(e));
      return;
    }
    multi ??= new cliProgress.MultiBar(
      {
        stream,
        format: '  {step} [{bar}] {percentage}% {amount} ETA {eta_text} {note}',
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: false,
      },
      cliProgress.Presets.shades_classic,
    );
    let bar = bars.get(e.step);
    if (!bar) {
      bar = multi.create(e.total, e.done, { step: e.step.padEnd(8), ...barPayload(e) });
      bars.set(e.step, bar);
    }
    bar.setTotal(e.total);
    bar.update(e.done, { step: e.step.padEnd(8), ...barPayload(e) });
  };
}
