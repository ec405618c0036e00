/**
 * Rendering of run events for a person: a live progress bar per step on a
 * terminal (cli-progress), plain lines otherwise (CI logs, pipes, files).
 */
import cliProgress from 'cli-progress';
import { formatEvent } from './report';
import type { Emit } from './runner';
import { formatBytes, formatDuration } from './units';

export interface ProgressViewOptions {
  readonly stream?: NodeJS.WriteStream;
  /** Force plain lines even on a terminal. */
  readonly plain?: boolean;
}

export function progressView(opts: ProgressViewOptions = {}): Emit {
  const stream = opts.stream ?? process.stderr;
  const line = (text: string): void => void stream.write(text + '\n');
  if (opts.plain || !stream.isTTY) return (e) => line(formatEvent(e));
  let bar: cliProgress.SingleBar | null = null;
  let barStep = '';
  const stopBar = (): void => {
    bar?.stop();
    bar = null;
  };
  return (e) => {
    if (e.type !== 'progress') {
      if (e.type === 'step' && e.status !== 'start' && e.name === barStep) stopBar();
      if (bar) {
        // cli-progress redraws in place: log above it.
        stream.write('\r\x1b[K' + formatEvent(e) + '\n');
        return;
      }
      line(formatEvent(e));
      return;
    }
    const fmt = (v: number): string => (e.unit === 'bytes' ? formatBytes(v) : `${v} ${e.unit}`);
    if (!bar || barStep !== e.step) {
      stopBar();
      barStep = e.step;
      bar = new cliProgress.SingleBar(
        { stream, format: `  ${e.step} [{bar}] {percentage}% {amount} ETA {eta_text} {note}`, hideCursor: true, clearOnComplete: false },
        cliProgress.Presets.shades_classic,
      );
      bar.start(e.total, e.done, { amount: '', eta_text: '', note: '' });
    }
    bar.setTotal(e.total);
    bar.update(e.done, {
      amount: `${fmt(e.done)} / ${fmt(e.total)}`,
      eta_text: e.etaSeconds === null ? '?' : formatDuration(e.etaSeconds),
      note: e.note ?? '',
    });
  };
}
