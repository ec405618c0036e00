/**
 * Several databases cut over as one: each database's cutover runs its own
 * steps, and they meet at two points — before any of them fences (every lag
 * gate, verification and pre-copy done, the pre-hook run) and before any of
 * them switches (every fence held, every final LSN applied, every lock proved
 * still held). One failing before the switch fails them all, and each lifts
 * its own fence: the application sees one blackout, and either every database
 * moves or none does. The commits at the switch are one per database (two-phase
 * commit needs max_prepared_transactions, which servers leave at 0), milliseconds
 * apart; a commit that fails after others succeeded leaves that database
 * streaming, and the next cutover finishes it (see docs/cutover.md).
 */
import { PgrelocateError } from '../errors';

export type MeetingPoint = 'fence' | 'switch';

export class Together {
  private expected: number;
  private readonly arrived = new Map<MeetingPoint, number>();
  private readonly waiting = new Map<MeetingPoint, { resolve: () => void; reject: (e: Error) => void }[]>();
  private failure: Error | null = null;
  /** When the first fence was taken and the last switch committed: the one blackout. */
  firstFence: number | null = null;
  lastSwitch: number | null = null;

  constructor(
    /** How many databases take part. */
    parties: number,
  ) {
    this.expected = parties;
  }

  /** Wait until every database still taking part has reached `point`; rejects once any has failed. */
  arrive(point: MeetingPoint): Promise<void> {
    if (this.failure) return Promise.reject(this.failed());
    this.arrived.set(point, (this.arrived.get(point) ?? 0) + 1);
    const p = new Promise<void>((resolve, reject) => {
      this.waiting.set(point, [...(this.waiting.get(point) ?? []), { resolve, reject }]);
    });
    this.settle();
    return p;
  }

  /** A database that will not fence (its switch was made by an earlier cutover): the others do not wait for it. */
  leave(): void {
    this.expected--;
    this.settle();
  }

  /** A database's cutover failed: every other one stops at its next meeting point, or now if it waits at one. */
  fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    for (const list of this.waiting.values()) for (const w of list) w.reject(this.failed());
    this.waiting.clear();
  }

  noteFence(at: number): void {
    this.firstFence = this.firstFence === null ? at : Math.min(this.firstFence, at);
  }

  noteSwitch(at: number): void {
    this.lastSwitch = this.lastSwitch === null ? at : Math.max(this.lastSwitch, at);
  }

  /** The one blackout: from the first fence to the last switch (null until both happened). */
  get blackoutSeconds(): number | null {
    return this.firstFence !== null && this.lastSwitch !== null ? (this.lastSwitch - this.firstFence) / 1000 : null;
  }

  private failed(): Error {
    const e = this.failure!;
    return new PgrelocateError(
      'cutover-aborted',
      `Another database's cutover failed, so this one stopped with it (every database moves or none does): ${e.message}`,
      'Fix what the failing database reports, then run the cutover again for all of them.',
    );
  }

  private settle(): void {
    for (const [point, list] of this.waiting) {
      if ((this.arrived.get(point) ?? 0) >= this.expected) {
        for (const w of list) w.resolve();
        this.waiting.delete(point);
      }
    }
  }
}
