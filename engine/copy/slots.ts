/**
 * One budget of `--jobs` work slots shared by the copy workers and the index
 * builds that run while the copy goes on. Index builds ask with priority:
 * once a table is in, its indexes are on the critical path (a long GIN build
 * must start as early as it can and keep a core to itself), and the copy of
 * the remaining tables fills whatever slots are left. Without a shared budget
 * the copy's N streams and the index builds' N processes fight over N cores.
 */
export class Slots {
  private used = 0;
  private readonly waiting: { readonly high: boolean; readonly grant: () => void }[] = [];

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`slots: capacity must be a positive integer, got ${capacity}`);
  }

  /** Slots taken now. */
  get inUse(): number {
    return this.used;
  }

  /** Wait for a slot; `high` jumps ahead of every waiting low-priority request. Resolves to its release function. */
  acquire(high = false): Promise<() => void> {
    return new Promise((resolve) => {
      const grant = (): void => {
        this.used++;
        let released = false;
        resolve(() => {
          if (released) return;
          released = true;
          this.used--;
          this.dispatch();
        });
      };
      const waitingHigh = this.waiting.some((w) => w.high);
      if (this.used < this.capacity && (high || !waitingHigh)) return grant();
      const at = high ? this.waiting.findIndex((w) => !w.high) : -1;
      if (at < 0) this.waiting.push({ high, grant });
      else this.waiting.splice(at, 0, { high, grant });
    });
  }

  /** Run `fn` holding one slot. */
  async run<T>(fn: () => Promise<T>, high = false): Promise<T> {
    const release = await this.acquire(high);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  private dispatch(): void {
    while (this.used < this.capacity && this.waiting.length > 0) this.waiting.shift()!.grant();
  }
}
