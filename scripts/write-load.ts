/**
 * A steady write load against the sample database — inserts, updates and
 * deletes on app.orders (with line items), appends to audit.events, and rows
 * in the PK-less schema_migrations — that keeps a ledger of every committed
 * write. After a migration, `ledger.check(target)` proves that every write the
 * source acknowledged is on the target, in its final state.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openClient, type ConnInfo } from '../engine/conn';

export interface WriteLoadOptions {
  /** Target transactions per second across all workers (default 50). */
  readonly rate?: number;
  /** Concurrent sessions (default 2). */
  readonly workers?: number;
  /** Relative weights of the operations. */
  readonly mix?: {
    readonly insert: number;
    readonly update: number;
    readonly delete: number;
    readonly event: number;
    readonly migration: number;
  };
  /** Log in as this role instead of the URL's (e.g. the sample's application role). */
  readonly user?: { readonly name: string; readonly password: string };
  /**
   * Ask for read-write transactions whatever the server's default, as some
   * drivers do for a connection they are told is not read-only (SET SESSION
   * CHARACTERISTICS … READ WRITE, and BEGIN READ WRITE).
   */
  readonly readWrite?: boolean;
}

/** Final state of a key the load wrote: its token, or null once deleted. */
type Expected = { readonly table: 'orders' | 'events' | 'schema_migrations'; readonly key: string; readonly token: string | null };

export interface LedgerCheck {
  readonly ok: boolean;
  readonly checked: number;
  readonly missing: readonly string[];
  readonly wrong: readonly string[];
  readonly resurrected: readonly string[];
}

export class Ledger {
  private readonly state = new Map<string, Expected>();
  committed = 0;
  failed = 0;
  /** Commits whose outcome is unknown (connection lost while committing): excluded from checks. */
  uncertain = 0;

  record(e: Expected): void {
    this.state.set(`${e.table}:${e.key}`, e);
    this.committed++;
  }

  get size(): number {
    return this.state.size;
  }

  /** Keys of orders the load inserted and has not deleted. */
  liveOrders(): string[] {
    return [...this.state.values()].filter((e) => e.table === 'orders' && e.token !== null).map((e) => e.key);
  }

  entries(): Expected[] {
    return [...this.state.values()];
  }

  /** Compare every ledger entry with the database at `conn`. */
  async check(conn: ConnInfo): Promise<LedgerCheck> {
    const c = await openClient(conn, { application_name: 'pgrelocate-ledger' });
    try {
      const missing: string[] = [];
      const wrong: string[] = [];
      const resurrected: string[] = [];
      const byTable = (t: Expected['table']): Expected[] => this.entries().filter((e) => e.table === t);
      const compare = (entries: Expected[], found: Map<string, string | null>, label: string): void => {
        for (const e of entries) {
          const has = found.has(e.key);
          if (e.token === null) {
            if (has) resurrected.push(`${label} ${e.key}`);
          } else if (!has) missing.push(`${label} ${e.key}`);
          else if (found.get(e.key) !== e.token) wrong.push(`${label} ${e.key}`);
        }
      };
      const orders = byTable('orders');
      const o = await c.query<{ id: string; note: string | null }>('SELECT id::text, note FROM app.orders WHERE id = ANY($1::bigint[])', [
        orders.map((e) => e.key),
      ]);
      compare(orders, new Map(o.rows.map((r) => [r.id, r.note])), 'app.orders');
      const events = byTable('events');
      const ev = await c.query<{ id: string; token: string | null }>(
        `SELECT id::text, payload->>'token' AS token FROM audit.events WHERE id = ANY($1::bigint[])`,
        [events.map((e) => e.key)],
      );
      compare(events, new Map(ev.rows.map((r) => [r.id, r.token])), 'audit.events');
      const migs = byTable('schema_migrations');
      const m = await c.query<{ version: string }>('SELECT version FROM public.schema_migrations WHERE version = ANY($1::text[])', [
        migs.map((e) => e.key),
      ]);
      compare(migs, new Map(m.rows.map((r) => [r.version, r.version])), 'public.schema_migrations');
      return { ok: missing.length + wrong.length + resurrected.length === 0, checked: this.state.size, missing, wrong, resurrected };
    } finally {
      await c.end();
    }
  }
}

export interface LoadSummary {
  readonly seconds: number;
  readonly committed: number;
  readonly failed: number;
  readonly uncertain: number;
  readonly perSecond: number;
  readonly lastError: string | null;
}

const DEFAULT_MIX = { insert: 4, update: 4, delete: 1, event: 6, migration: 0.2 };

export class WriteLoad {
  readonly ledger = new Ledger();
  private running = false;
  private loops: Promise<void>[] = [];
  private clients = new Set<pg.Client>();
  private started = 0;
  private lastError: string | null = null;
  private maxSampleOrder = 1;
  private endpoint: ConnInfo;
  private generation = 0;
  /** Time of the last commit on each endpoint generation (0 = the first). */
  private readonly lastOk = new Map<number, number>();
  private readonly firstOk = new Map<number, number>();
  /** When each commit happened (ms), in order: the longest stretch without one is what the application saw. */
  private readonly commits: number[] = [];

  constructor(
    conn: ConnInfo,
    private readonly opts: WriteLoadOptions = {},
  ) {
    this.endpoint = conn;
  }

  private async open(): Promise<pg.Client> {
    const conn = this.opts.user ? { ...this.endpoint, user: this.opts.user.name, password: this.opts.user.password } : this.endpoint;
    const c = await openClient(conn, { application_name: 'write-load' });
    this.clients.add(c);
    if (this.opts.readWrite) await c.query('SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE');
    return c;
  }

  async start(): Promise<void> {
    const workers = Math.max(1, this.opts.workers ?? 2);
    const first = await this.open();
    const r = await first.query<{ m: string | null }>('SELECT max(id)::text AS m FROM app.orders');
    this.maxSampleOrder = Number(r.rows[0]?.m ?? 1) || 1;
    await first.end();
    this.clients.delete(first);
    this.running = true;
    this.started = Date.now();
    const interval = (1000 * workers) / Math.max(1, this.opts.rate ?? 50);
    this.loops = Array.from({ length: workers }, (_, i) => this.loop(interval, i, workers));
  }

  /**
   * Point the application at another server, as a deploy would after cutover:
   * sessions reconnect there on their next error.
   */
  switchTo(conn: ConnInfo): void {
    this.endpoint = conn;
    this.generation++;
  }

  /**
   * The write gap the application saw across a switch: from its last commit on
   * the old server to its first on the new one (seconds), or null.
   */
  writeGap(): number | null {
    const before = this.lastOk.get(this.generation - 1);
    const after = this.firstOk.get(this.generation);
    return before !== undefined && after !== undefined ? (after - before) / 1000 : null;
  }

  /**
   * The longest time no write committed anywhere, after the first second
   * (seconds): the blackout as the application saw it, through a pooler too.
   */
  longestPause(): number {
    let longest = 0;
    for (let i = 1; i < this.commits.length; i++)
      if (this.commits[i - 1]! - this.started > 1000) longest = Math.max(longest, this.commits[i]! - this.commits[i - 1]!);
    return longest / 1000;
  }

  private async loop(intervalMs: number, worker: number, workers: number): Promise<void> {
    let next = Date.now();
    let c: pg.Client | null = null;
    let gen = this.generation;
    while (this.running) {
      try {
        if (!c || gen !== this.generation) {
          if (c) {
            await c.end().catch(() => undefined);
            this.clients.delete(c);
          }
          gen = this.generation;
          c = await this.open();
        }
        if (await this.once(c, (id) => Number(id) % workers === worker)) {
          const now = Date.now();
          this.commits.push(now);
          this.lastOk.set(gen, now);
          if (!this.firstOk.has(gen)) this.firstOk.set(gen, now);
        }
      } catch (e) {
        const err = e as { code?: string; message?: string };
        this.lastError = err.message ?? String(e);
        const notSent = /not queryable|ECONNREFUSED|Connection terminated|connect/i.test(this.lastError) && err.code === undefined;
        // A session killed while a statement ran may or may not have committed it.
        if (err.code === '57P01' || err.code === '08006' || (err.code === undefined && !notSent)) this.ledger.uncertain++;
        else this.ledger.failed++;
        if (c && (err.code === undefined || err.code === '57P01' || err.code?.startsWith('08'))) {
          // The session is gone: reconnect, like a pool would.
          await c.end().catch(() => undefined);
          this.clients.delete(c);
          c = null;
        } else {
          await c?.query('ROLLBACK').catch(() => undefined);
        }
        if (!this.running) break;
      }
      next += intervalMs;
      const wait = next - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      else next = Date.now();
    }
    if (c) {
      await c.end().catch(() => undefined);
      this.clients.delete(c);
    }
  }

  private pick(): keyof typeof DEFAULT_MIX {
    const mix = this.opts.mix ?? DEFAULT_MIX;
    const total = Object.values(mix).reduce((a, b) => a + b, 0);
    let x = Math.random() * total;
    for (const [k, w] of Object.entries(mix) as [keyof typeof DEFAULT_MIX, number][]) {
      if ((x -= w) < 0) return k;
    }
    return 'event';
  }

  /**
   * One transaction; true when a write was committed. A worker updates and
   * deletes only the orders it `owns` (id modulo the worker count): one writer
   * per row, so the ledger records each row's writes in commit order.
   */
  private async once(c: pg.Client, owns: (id: string) => boolean): Promise<boolean> {
    const token = randomBytes(8).toString('hex');
    const op = this.pick();
    switch (op) {
      case 'insert': {
        await c.query(this.opts.readWrite ? 'BEGIN READ WRITE' : 'BEGIN');
        const r = await c.query<{ id: string }>(
          `INSERT INTO app.orders (user_id, status, total, note) VALUES ((SELECT min(id) FROM app.users), 'pending', 10.00, $1) RETURNING id::text`,
          [token],
        );
        const id = r.rows[0]!.id;
        await c.query(
          `INSERT INTO app.line_items (order_id, line_no, product_id, quantity, unit_price) VALUES ($1, 1, (SELECT min(id) FROM app.products), 1, 10.00)`,
          [id],
        );
        await c.query('COMMIT');
        this.ledger.record({ table: 'orders', key: id, token });
        return true;
      }
      case 'update': {
        const live = this.ledger.liveOrders().filter(owns);
        const useOwn = live.length > 0 && Math.random() < 0.5;
        const sample = String(1 + Math.floor(Math.random() * this.maxSampleOrder));
        if (!useOwn && !owns(sample)) return false;
        const id = useOwn ? live[Math.floor(Math.random() * live.length)]! : sample;
        const r = await c.query<{ id: string }>(`UPDATE app.orders SET note = $2, status = 'paid' WHERE id = $1 RETURNING id::text`, [
          id,
          token,
        ]);
        if (r.rowCount === 1) this.ledger.record({ table: 'orders', key: id, token });
        return r.rowCount === 1;
      }
      case 'delete': {
        const live = this.ledger.liveOrders().filter(owns);
        if (live.length === 0) return false;
        const id = live[Math.floor(Math.random() * live.length)]!;
        if (Number(id) <= this.maxSampleOrder) return false; // sample orders may be referenced by invoices
        const r = await c.query(`DELETE FROM app.orders WHERE id = $1`, [id]);
        if (r.rowCount === 1) this.ledger.record({ table: 'orders', key: id, token: null });
        return r.rowCount === 1;
      }
      case 'event': {
        const r = await c.query<{ id: string }>(
          `INSERT INTO audit.events (kind, payload) VALUES ('load', jsonb_build_object('token', $1::text)) RETURNING id::text`,
          [token],
        );
        this.ledger.record({ table: 'events', key: r.rows[0]!.id, token });
        return true;
      }
      case 'migration': {
        const version = `load_${token}`;
        await c.query(`INSERT INTO public.schema_migrations (version) VALUES ($1)`, [version]);
        this.ledger.record({ table: 'schema_migrations', key: version, token: version });
        return true;
      }
    }
  }

  /** Stop issuing writes, wait for the ones in flight, close the sessions. */
  async stop(): Promise<LoadSummary> {
    this.running = false;
    await Promise.all(this.loops);
    await Promise.all([...this.clients].map((c) => c.end().catch(() => undefined)));
    const seconds = (Date.now() - this.started) / 1000;
    return {
      seconds,
      committed: this.ledger.committed,
      failed: this.ledger.failed,
      uncertain: this.ledger.uncertain,
      perSecond: seconds > 0 ? this.ledger.committed / seconds : 0,
      lastError: this.lastError,
    };
  }
}
