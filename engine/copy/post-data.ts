/**
 * Post-data, pipelined with the copy: as soon as a table's rows are all in,
 * its indexes and primary/unique constraints are built (one task per index:
 * SQL on a pooled session, or `pg_restore -L` of its entry when that entry
 * carries more; most expensive first, each holding one of the `--jobs` slots
 * it shares with the copy) while other tables are still copying. A foreign key
 * between two plain tables is added (and validated) as soon as both tables
 * are in with their indexes, as `pg_restore -j` schedules it, instead of
 * after the slowest index of the whole database. Everything else in the
 * post-data section (triggers, rules, policies, row security, NOT VALID
 * checks, statistics, partition index attachments, comments) follows once
 * every table is in. On a 2-core machine this is what hides a long
 * single-threaded index build (a GIN index on a big jsonb column) behind the
 * rest of the copy.
 */
import type pg from 'pg';
import { writeFileSync } from 'node:fs';
import { type ConnInfo } from '../conn';
import { PgrelocateError } from '../errors';
import { markResumed, parseRestoreErrors, type RestoreError } from '../restore-errors';
import { ProgressMeter, type Emit } from '../runner';
import { libpqUrl, runTool } from '../tool-exec';
import type { ClientTools } from '../tools';
import { RESTORE_SESSION_OPTIONS } from './schema';
import { SessionPool } from './session-pool';
import type { Slots } from './slots';
import {
  type ForeignKeyInfo,
  type KeyConstraintSql,
  type PostDataSplit,
  type PostDataTask,
  indexBuildMemory,
  indexBuildOptions,
} from './post-data-plan';

/**
 * Tables under this size get their post-data in one message (see buildSmall):
 * their builds take milliseconds, so the round trips would dominate.
 */
export const SMALL_TABLE_BYTES = 8 * 1024 * 1024;

/**
 * Runs per-table post-data as tables finish copying, then the rest. Each index
 * is its own task holding one of the shared slots (with priority over the
 * copy), most expensive first, so the longest build starts as soon as its
 * table is in and the copy goes on beside it.
 */
export class PostDataPipeline {
  private readonly running: Promise<void>[] = [];
  private readonly errors: RestoreError[] = [];
  private failure: Error | null = null;
  private seq = 0;
  private readonly reported = new Set<string>();
  private analyzedCount = 0;
  /** The index builds' own progress line, beside the copy's. */
  private readonly meter: ProgressMeter | null;
  private built = 0;
  private readonly building = new Set<string>();
  /** Target sessions kept between tasks (connecting, with SCRAM, costs more than a small index build). */
  private readonly pool: SessionPool;
  /** The maintenance_work_mem each pooled session was last given: SET only when a build needs another (a round trip per index saved). */
  private readonly memoryOf = new WeakMap<pg.Client, string>();
  /** Per table ("schema.table"): resolved when its rows and per-table post-data are in (the foreign keys wait for it). */
  private readonly tables = new Map<string, { promise: Promise<void>; resolve: () => void }>();

  constructor(
    private readonly tools: ClientTools,
    private readonly target: ConnInfo,
    private readonly dumpFile: string,
    private readonly workDir: string,
    private readonly split: PostDataSplit,
    private readonly slots: Slots,
    private readonly resumed: boolean,
    private readonly emit: Emit,
  ) {
    this.pool = new SessionPool(target);
    const builds = [...split.perTable.values()].reduce((n, tasks) => n + tasks.length, 0);
    this.meter = builds > 0 ? new ProgressMeter(emit, 'indexes', builds, 'indexes') : null;
    for (const fk of split.foreignKeys) {
      this.running.push(
        Promise.all([this.ready(fk.table).promise, this.ready(fk.refTable).promise])
          .then(() => this.slots.run(() => this.addForeignKey(fk), true))
          .catch((e: Error) => {
            this.failure ??= e;
          }),
      );
    }
    for (const p of split.partitioned ?? []) {
      if (p.leaves.length === 0) continue;
      this.running.push(
        Promise.all(p.leaves.map((l) => this.ready(l).promise)).then(async () => {
          if (!this.failure) await this.slots.run(() => this.analyze(p.quoted), true);
        }),
      );
    }
  }

  /** What is being built now, for the progress line. */
  private buildingNote(): string {
    const now = [...this.building];
    return now.length === 0 ? '' : `building ${now.slice(0, 2).join(', ')}${now.length > 2 ? ` and ${now.length - 2} more` : ''}`;
  }

  /** Resolved once a table is copied and its indexes and key constraints are built. */
  private ready(table: string): { promise: Promise<void>; resolve: () => void } {
    let r = this.tables.get(table);
    if (!r) {
      let resolve!: () => void;
      const promise = new Promise<void>((res) => (resolve = res));
      r = { promise, resolve };
      this.tables.set(table, r);
    }
    return r;
  }

  /** Add (and so validate) one foreign key once both its tables are in; skipped when the interrupted attempt added it. */
  private async addForeignKey(fk: ForeignKeyInfo): Promise<void> {
    if (this.failure) return;
    const t0 = Date.now();
    await this.pool.with(async (c) => {
      const done = await c.query(`SELECT 1 FROM pg_constraint WHERE conname = $1 AND conrelid = $2::regclass`, [
        fk.constraint,
        fk.qualifiedTable,
      ]);
      if (done.rowCount === 0) await c.query(fk.sql);
    }, `adding foreign key ${fk.constraint} on ${fk.table}`);
    this.emit({
      type: 'log',
      level: 'detail',
      message: `foreign key ${fk.constraint} on ${fk.table} added in ${((Date.now() - t0) / 1000).toFixed(1)}s`,
    });
  }

  private async restore(lines: readonly string[], label: string, parallel: number, options = RESTORE_SESSION_OPTIONS): Promise<void> {
    if (lines.length === 0) return;
    const list = `${this.workDir}/post-${this.seq++}.list`;
    writeFileSync(list, lines.join('\n') + '\n');
    const args = [
      '-Fc',
      '-L',
      list,
      '--no-tablespaces',
      '-v',
      ...(parallel > 1 ? ['-j', String(parallel)] : []),
      '-d',
      libpqUrl(this.target),
      this.dumpFile,
    ];
    const r = await runTool(this.tools.pgRestore, args, [this.target], { env: { PGOPTIONS: options } });
    const errs = markResumed(parseRestoreErrors(r.stderr), this.resumed);
    this.errors.push(...errs);
    const real = errs.filter((e) => !e.expected);
    if (real.length > 0 || (r.exitCode !== 0 && errs.length === 0)) {
      throw new PgrelocateError(
        'schema-restore-failed',
        `Building ${label} failed:\n  ${real.map((e) => `${e.message}${e.command ? ` [${e.command.slice(0, 160)}]` : ''}`).join('\n  ') || r.stderr.split('\n').slice(-6).join('\n  ')}`,
        'Fix the cause on the target, then rerun sync; it resumes.',
        { errors: errs },
      );
    }
  }

  /** Build one index through SQL: a plain index, or the index of a key constraint (attached afterwards). */
  private async createIndex(createSql: string, am: string | undefined, what: string): Promise<void> {
    const sql = this.resumed ? createSql.replace(/^CREATE (UNIQUE )?INDEX /, 'CREATE $1INDEX IF NOT EXISTS ') : createSql;
    await this.pool.with(async (c) => {
      const memory = indexBuildMemory(am);
      if (this.memoryOf.get(c) !== memory) {
        await c.query(`SET maintenance_work_mem = '${memory}'`);
        this.memoryOf.set(c, memory);
      }
      await c.query(sql);
    }, what);
  }

  /** One index: a key constraint's (attached later), a plain one through SQL, or its `pg_restore -L` entry when that carries more. */
  private async buildOne(task: PostDataTask, table: string): Promise<void> {
    if (task.keyConstraint)
      await this.createIndex(task.keyConstraint.createIndex, task.am, `building the index of ${task.keyConstraint.constraint} on ${table}`);
    else if (task.createSql) await this.createIndex(task.createSql, task.am, `building ${task.label} on ${table}`);
    else await this.restore([task.line], `${task.label} on ${table}`, 1, indexBuildOptions(task.am));
  }

  /** Attach built indexes as their constraints (skipping any the interrupted attempt attached). */
  private async attach(keys: readonly KeyConstraintSql[]): Promise<void> {
    if (keys.length === 0) return;
    await this.pool.with(
      async (c) => {
        for (const k of keys) {
          const done = await c.query(`SELECT 1 FROM pg_constraint WHERE conname = $1 AND conrelid = $2::regclass`, [k.constraint, k.table]);
          if (done.rowCount === 0) await c.query(k.attach);
        }
      },
      `attaching ${keys.map((k) => k.constraint).join(', ')}`,
    );
  }

  /**
   * A small table's indexes, key constraints and ANALYZE as one message (one
   * round trip and one commit instead of five or more): on a database of
   * thousands of small tables these round trips are most of the work. If
   * the message fails, nothing of it stays (one implicit transaction), and
   * each piece runs again on its own, so the error names its object and a
   * failed ANALYZE is only a warning, as it is for larger tables.
   */
  private async buildSmall(table: string, quoted: string, tasks: readonly PostDataTask[]): Promise<void> {
    if (this.failure) return;
    const t0 = Date.now();
    const batched = await this.pool.with(async (c) => {
      const sql: string[] = [];
      let memory = this.memoryOf.get(c);
      for (const task of tasks) {
        const m = indexBuildMemory(task.am);
        if (m !== memory) sql.push(`SET maintenance_work_mem = '${m}'`);
        memory = m;
        sql.push(task.keyConstraint ? task.keyConstraint.createIndex : task.createSql!);
      }
      for (const task of tasks) if (task.keyConstraint) sql.push(task.keyConstraint.attach);
      sql.push(`ANALYZE ${quoted}`);
      try {
        await c.query(sql.join(';\n'));
        if (memory) this.memoryOf.set(c, memory);
        return true;
      } catch {
        // Rolled back with the rest, SET included.
        this.memoryOf.delete(c);
        return false;
      }
    }, `building the indexes of ${table}`);
    if (!batched) {
      for (const task of tasks) await this.buildOne(task, table);
      await this.attach(tasks.flatMap((t) => (t.keyConstraint ? [t.keyConstraint] : [])));
      this.ready(table).resolve();
      await this.analyze(quoted);
    } else this.analyzedCount++;
    this.built += tasks.length;
    this.meter?.update(this.built, this.buildingNote());
    this.emit({
      type: 'log',
      level: 'detail',
      message: `${tasks.map((t) => t.label).join(', ')} on ${table} built in ${((Date.now() - t0) / 1000).toFixed(1)}s`,
    });
  }

  private async analyze(quoted: string): Promise<void> {
    try {
      await this.pool.with((c) => c.query(`ANALYZE ${quoted}`), `ANALYZE ${quoted}`);
      this.analyzedCount++;
    } catch (e) {
      // Statistics are not data: reported, and tried again by the final pass over tables without statistics.
      this.emit({ type: 'log', level: 'warn', message: (e as Error).message });
    }
  }

  /** The foreign keys this pipeline adds itself (the rest of post-data has the others). */
  get foreignKeys(): readonly ForeignKeyInfo[] {
    return this.split.foreignKeys;
  }

  /** Tables analyzed by the pipeline so far. */
  get analyzed(): number {
    return this.analyzedCount;
  }

  /** End the pooled target sessions; tasks still running end theirs when they finish. */
  async close(): Promise<void> {
    await this.pool.close();
  }

  /**
   * A table's rows are all copied: build its indexes now, then analyze it
   * (after them: an expression index gets statistics too, and ANALYZE's lock
   * would wait for the builds anyway). `table` is "schema.table", unquoted;
   * `quoted` its quoted name, when known.
   */
  tableCopied(table: string, quoted?: string, bytes?: number): void {
    const tasks = this.split.perTable.get(table);
    if (!tasks) this.ready(table).resolve();
    if (!tasks || this.reported.has(table)) return;
    this.reported.add(table);
    if (quoted && bytes !== undefined && bytes < SMALL_TABLE_BYTES && !this.resumed && tasks.every((t) => t.keyConstraint || t.createSql)) {
      this.running.push(
        this.slots
          .run(() => this.buildSmall(table, quoted, tasks), true)
          .catch((e: Error) => {
            this.failure ??= e;
          })
          .finally(() => this.ready(table).resolve()),
      );
      return;
    }
    const builds = tasks.map((task) =>
      this.slots.run(async () => {
        if (this.failure) return;
        const t0 = Date.now();
        const what = `${task.label} on ${table}`;
        this.building.add(what);
        this.meter?.update(this.built, this.buildingNote());
        await this.buildOne(task, table);
        this.building.delete(what);
        this.built++;
        this.meter?.update(this.built, this.buildingNote());
        this.emit({ type: 'log', level: 'detail', message: `${what} built in ${((Date.now() - t0) / 1000).toFixed(1)}s` });
      }, true),
    );
    const keys = tasks.flatMap((t) => (t.keyConstraint ? [t.keyConstraint] : []));
    this.running.push(
      Promise.allSettled(builds)
        .then(async (rs) => {
          const bad = rs.find((r): r is PromiseRejectedResult => r.status === 'rejected');
          if (bad) throw bad.reason;
          if (this.failure) return;
          await this.attach(keys);
          this.ready(table).resolve();
          if (quoted && !this.failure) await this.slots.run(() => this.analyze(quoted), true);
        })
        .catch((e: Error) => {
          this.failure ??= e;
        })
        // A failed build still releases the foreign keys waiting on this table (they see the failure and stop).
        .finally(() => this.ready(table).resolve()),
    );
  }

  /** Wait for the per-table builds and early foreign keys, then restore the rest (triggers, attachments, …) with N jobs. */
  async finish(): Promise<RestoreError[]> {
    // Tables never reported (nothing to copy) still get their indexes.
    for (const t of this.split.perTable.keys()) this.tableCopied(t);
    // Every table is in by now: what still waits on one the copy did not report (not copied, or no rows) goes ahead.
    for (const t of this.tables.keys()) if (!this.split.perTable.has(t)) this.ready(t).resolve();
    try {
      while (this.running.length > 0) await this.running.shift();
    } finally {
      await this.close();
    }
    this.meter?.update(this.built, undefined, true);
    if (this.failure) throw this.failure;
    await this.restore(this.split.rest, 'foreign keys, triggers and the rest of post-data', this.slots.capacity);
    return this.errors;
  }
}
