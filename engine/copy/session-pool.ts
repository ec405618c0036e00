/**
 * Target sessions for the post-data pipeline, reused from one index build or
 * foreign key to the next: a connection per object would cost a round trip
 * and a backend start each, which dominates on databases of many small tables.
 */
import type pg from 'pg';
import { connect, type ConnInfo } from '../conn';
import { PgrelocateError } from '../errors';
import { RESTORE_SESSION_OPTIONS } from './schema';

export class SessionPool {
  private readonly idle: pg.Client[] = [];
  private closed = false;

  constructor(private readonly target: ConnInfo) {}

  /** Run `fn` on a pooled session; a failure is the schema restore's, naming `what`. */
  async with<T>(fn: (c: pg.Client) => Promise<T>, what: string): Promise<T> {
    const c =
      this.idle.pop() ??
      (await connect(this.target, 'target', { options: RESTORE_SESSION_OPTIONS, application_name: 'pgrelocate-post-data' }));
    let reusable = false;
    try {
      const v = await fn(c);
      reusable = !this.closed;
      return v;
    } catch (e) {
      throw new PgrelocateError(
        'schema-restore-failed',
        `${what} failed: ${(e as Error).message}`,
        'Fix the cause on the target, then rerun sync; it resumes.',
      );
    } finally {
      if (reusable) this.idle.push(c);
      else await c.end().catch(() => undefined);
    }
  }

  /** End the idle sessions; tasks still running end theirs when they finish. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.idle.splice(0).map((c) => c.end().catch(() => undefined)));
  }
}
