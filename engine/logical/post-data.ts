/**
 * Post-data, pipelined with the copy: as soon as a table's rows are all in,
 * its indexes and primary/unique constraints are built (one `pg_restore -L`
 * per index, most expensive first, each holding one of the `--jobs` slots it
 * shares with the copy) while other tables are still copying. Foreign keys,
 * triggers and everything that spans tables follow once every table is in.
 * On a 2-core machine this is what hides a long single-threaded index build
 * (a GIN index on a big jsonb column) behind the rest of the copy.
 */
import { writeFileSync } from 'node:fs';
import type pg from 'pg';
import { connect, ident, type ConnInfo } from '../conn';
import { PgferryError } from '../errors';
import { parseRestoreErrors, type RestoreError } from '../restore-errors';
import type { Emit } from '../runner';
import { libpqUrl, runTool } from '../tool-exec';
import type { ClientTools } from '../tools';
import { RESTORE_SESSION_OPTIONS, restoreSessionOptions } from './schema';
import type { Slots } from './slots';

export interface TocEntry {
  readonly line: string;
  readonly type: string;
  readonly schema: string;
  readonly tag: string;
}

/** Types pg_restore puts in the post-data section that belong to one table. */
const PER_TABLE = new Set(['INDEX', 'CONSTRAINT']);
const POST_DATA = new Set([
  'INDEX',
  'CONSTRAINT',
  'FK CONSTRAINT',
  'TRIGGER',
  'RULE',
  'POLICY',
  'INDEX ATTACH',
  'EVENT TRIGGER',
  'MATERIALIZED VIEW DATA',
  'STATISTICS',
  'DEFAULT ACL',
  'PUBLICATION',
  'PUBLICATION TABLE',
  'SUBSCRIPTION',
]);
const TYPES = [
  ...POST_DATA,
  'TABLE',
  'TABLE DATA',
  'SEQUENCE',
  'VIEW',
  'FUNCTION',
  'SCHEMA',
  'TYPE',
  'DOMAIN',
  'EXTENSION',
  'COMMENT',
  'ACL',
  'DEFAULT',
].sort((a, b) => b.length - a.length);

/** Parse `pg_restore -l` output: `123; 1259 16420 INDEX app orders_user_idx owner`. Pure. */
export function parseToc(text: string): TocEntry[] {
  const out: TocEntry[] = [];
  for (const line of text.split('\n')) {
    const m = /^\d+; \d+ \d+ (.*)$/.exec(line);
    if (!m) continue;
    const rest = m[1]!;
    const type = TYPES.find((t) => rest.startsWith(t + ' '));
    if (!type) continue;
    const after = rest.slice(type.length + 1).split(' ');
    // schema, then the tag (one or more words), then the owner
    out.push({ line, type, schema: after[0] ?? '', tag: after.slice(1, -1).join(' ') });
  }
  return out;
}

/** A source index as the pipeline schedules it: its table and an estimate of its build cost. */
export interface IndexInfo {
  readonly table: string;
  /** Access method (btree, gin, …). */
  readonly am: string;
  readonly cost: number;
  /**
   * For a plain index on a plain table whose TOC entry is only its CREATE
   * INDEX (not clustered, not the replica identity, no column statistics
   * target, no constraint): that statement, run on a pooled connection. A
   * `pg_restore` process per index costs about 30 ms of start-up, which for a
   * schema of thousands of small tables was most of the copy.
   */
  readonly createSql?: string;
  /**
   * For the index of a primary key or unique constraint on a plain table: the
   * index built on its own (a SHARE lock, so beside the table's other index
   * builds), then attached as the constraint (a moment's exclusive lock).
   * `pg_restore` would build it inside `ALTER TABLE ADD CONSTRAINT`, whose
   * exclusive lock waits for, and blocks, every other build on the table.
   */
  readonly keyConstraint?: KeyConstraintSql;
}

export interface KeyConstraintSql {
  readonly createIndex: string;
  readonly attach: string;
  readonly constraint: string;
  readonly table: string;
}

/** What the source catalog says about a key constraint's index. */
export interface KeyConstraintRow {
  /** pg_get_indexdef with search_path = pg_catalog: every name qualified. */
  readonly indexdef: string;
  readonly qualifiedTable: string;
  readonly indexName: string;
  readonly conname: string;
  readonly contype: 'p' | 'u';
  readonly deferrable: boolean;
  readonly deferred: boolean;
}

/** The two statements that rebuild a key constraint as index + `USING INDEX`. Pure. */
export function keyConstraintSql(r: KeyConstraintRow): KeyConstraintSql {
  const kind = r.contype === 'p' ? 'PRIMARY KEY' : 'UNIQUE';
  const timing = `${r.deferrable ? ' DEFERRABLE' : ''}${r.deferred ? ' INITIALLY DEFERRED' : ''}`;
  return {
    createIndex: r.indexdef,
    attach: `ALTER TABLE ONLY ${r.qualifiedTable} ADD CONSTRAINT ${ident(r.conname)} ${kind} USING INDEX ${ident(r.indexName)}${timing}`,
    constraint: r.conname,
    table: r.qualifiedTable,
  };
}

/**
 * Relative build cost per byte of index by access method: a GIN build extracts
 * and sorts every key of every row on one core (measured here: 160 MB of GIN
 * on jsonb in 17 s against 40 MB of btree in about 1 s).
 */
const AM_COST: Readonly<Record<string, number>> = { gin: 4, gist: 4, spgist: 2, btree: 1, hash: 1, brin: 0.1 };

export function indexCost(amname: string, bytes: number): number {
  return (AM_COST[amname] ?? 1) * Math.max(bytes, 8192);
}

/**
 * Session settings for one index build on the target. A B-tree sorts its keys
 * and is faster with more memory (3.2 s at 64 MB, 2.7 s at 512 MB for 3 M text
 * keys). A GIN build is not: it gathers keys in a red-black tree of up to
 * maintenance_work_mem and spends its time comparing in it, so with many
 * distinct keys a large tree is slower — the sample's jsonb_path_ops index
 * (1.4 M rows): 16.4–17.0 s at 16–64 MB, 20–21.8 s at 512 MB; GIN on int
 * arrays and pg_trgm measured the same at 16 MB, 64 MB and 512 MB. GIN gets
 * PostgreSQL's default of 64 MB, everything else 512 MB. Pure.
 */
export function indexBuildMemory(amname: string | undefined): string {
  return amname === 'gin' ? '64MB' : '512MB';
}

/** PGOPTIONS for a `pg_restore` that builds one index. Pure. */
export function indexBuildOptions(amname: string | undefined): string {
  return restoreSessionOptions(indexBuildMemory(amname));
}

/**
 * Split the post-data entries into per-table lists and the rest. `indexes`
 * maps "schema.index" to its table "schema.table" (from the source catalog).
 * Each table's entries come most expensive first. Pure.
 */
export function splitPostData(
  entries: readonly TocEntry[],
  indexes: ReadonlyMap<string, IndexInfo>,
  tables: ReadonlySet<string>,
): { perTable: Map<string, PostDataTask[]>; rest: string[] } {
  const perTable = new Map<string, PostDataTask[]>();
  const rest: string[] = [];
  for (const e of entries) {
    // Comments on post-data objects come with the rest, once those objects exist.
    if (e.type === 'COMMENT' && /^(INDEX|CONSTRAINT|FK CONSTRAINT|TRIGGER|RULE|POLICY) /.test(e.tag)) {
      rest.push(e.line);
      continue;
    }
    if (!POST_DATA.has(e.type)) continue;
    let table: string | undefined;
    let cost = 0;
    let key: KeyConstraintSql | undefined;
    let am: string | undefined;
    let createSql: string | undefined;
    if (e.type === 'INDEX') {
      const ix = indexes.get(`${e.schema}.${e.tag}`);
      table = ix?.table;
      cost = ix?.cost ?? 0;
      am = ix?.am;
      createSql = ix?.createSql;
    } else if (e.type === 'CONSTRAINT') {
      const [tbl, con] = e.tag.split(' ');
      const t = `${e.schema}.${tbl}`;
      if (tables.has(t)) table = t;
      // A primary key or unique constraint builds the index of the same name.
      const ix = indexes.get(`${e.schema}.${con}`);
      cost = ix?.cost ?? 0;
      am = ix?.am;
      key = ix?.keyConstraint;
    }
    if (table && PER_TABLE.has(e.type)) {
      const list = perTable.get(table) ?? [];
      list.push({
        line: e.line,
        label: `${e.schema}.${e.tag.split(' ').pop()}`,
        cost,
        ...(am ? { am } : {}),
        ...(createSql ? { createSql } : {}),
        ...(key ? { keyConstraint: key } : {}),
      });
      perTable.set(table, list);
    } else rest.push(e.line);
  }
  for (const list of perTable.values()) list.sort((a, b) => b.cost - a.cost);
  return { perTable, rest };
}

/** One per-table post-data entry (an index or a key constraint): one `pg_restore -L` of one line, or index + attach. */
export interface PostDataTask {
  readonly line: string;
  readonly label: string;
  readonly cost: number;
  /** The index's access method, when the source catalog names it. */
  readonly am?: string;
  /** The CREATE INDEX statement, when the index can be built without `pg_restore` (see IndexInfo). */
  readonly createSql?: string;
  readonly keyConstraint?: KeyConstraintSql;
}

/** Every index on the source: "schema.index" (unquoted, as pg_restore -l prints it) → its table and build cost. */
export async function sourceIndexes(source: pg.Client): Promise<Map<string, IndexInfo>> {
  // Definitions with every name qualified, whatever the source's search_path.
  await source.query(`SELECT pg_catalog.set_config('search_path', 'pg_catalog', false)`);
  const r = await source.query<{
    i: string;
    t: string;
    am: string;
    bytes: string;
    relkind: string;
    indexdef: string;
    qt: string;
    iname: string;
    conname: string | null;
    contype: 'p' | 'u' | null;
    deferrable: boolean | null;
    deferred: boolean | null;
    plain: boolean;
  }>(
    `SELECT n.nspname || '.' || ic.relname AS i, n.nspname || '.' || tc.relname AS t, am.amname AS am,
            pg_relation_size(ic.oid)::text AS bytes, tc.relkind::text AS relkind, pg_get_indexdef(ic.oid) AS indexdef,
            quote_ident(n.nspname) || '.' || quote_ident(tc.relname) AS qt, ic.relname AS iname,
            con.conname, con.contype::text AS contype, con.condeferrable AS deferrable, con.condeferred AS deferred,
            (ic.relkind = 'i' AND tc.relkind = 'r' AND NOT x.indisclustered AND NOT x.indisreplident
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c2 WHERE c2.conindid = ic.oid AND c2.conrelid = tc.oid)
             AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = ic.oid AND a.attstattarget >= 0)) AS plain
       FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid JOIN pg_class tc ON tc.oid = x.indrelid
       JOIN pg_namespace n ON n.oid = tc.relnamespace JOIN pg_am am ON am.oid = ic.relam
       LEFT JOIN pg_constraint con ON con.conindid = ic.oid AND con.conrelid = tc.oid AND con.contype IN ('p', 'u')`,
  );
  return new Map(
    r.rows.map((x) => {
      const key =
        x.conname !== null && x.contype !== null && x.relkind === 'r' && x.conname === x.iname
          ? keyConstraintSql({
              indexdef: x.indexdef,
              qualifiedTable: x.qt,
              indexName: x.iname,
              conname: x.conname,
              contype: x.contype,
              deferrable: x.deferrable === true,
              deferred: x.deferred === true,
            })
          : undefined;
      const info: IndexInfo = {
        table: x.t,
        am: x.am,
        cost: indexCost(x.am, Number(x.bytes)),
        ...(x.plain ? { createSql: x.indexdef } : {}),
        ...(key ? { keyConstraint: key } : {}),
      };
      return [x.i, info];
    }),
  );
}

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
  /** Target sessions kept between tasks (connecting, with SCRAM, costs more than a small index build). */
  private readonly idle: pg.Client[] = [];
  private closed = false;

  constructor(
    private readonly tools: ClientTools,
    private readonly target: ConnInfo,
    private readonly dumpFile: string,
    private readonly workDir: string,
    private readonly split: { perTable: Map<string, PostDataTask[]>; rest: string[] },
    private readonly slots: Slots,
    private readonly resumed: boolean,
    private readonly emit: Emit,
  ) {}

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
    const errs = parseRestoreErrors(r.stderr).map((e) =>
      !e.expected && this.resumed && /already exists/.test(e.message)
        ? { ...e, expected: true, reason: 'created by the interrupted attempt' }
        : e,
    );
    this.errors.push(...errs);
    const real = errs.filter((e) => !e.expected);
    if (real.length > 0 || (r.exitCode !== 0 && errs.length === 0)) {
      throw new PgferryError(
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
    await this.withTarget(async (c) => {
      await c.query(`SET maintenance_work_mem = '${indexBuildMemory(am)}'`);
      await c.query(sql);
    }, what);
  }

  /** Attach built indexes as their constraints (skipping any the interrupted attempt attached). */
  private async attach(keys: readonly KeyConstraintSql[]): Promise<void> {
    if (keys.length === 0) return;
    await this.withTarget(
      async (c) => {
        for (const k of keys) {
          const done = await c.query(`SELECT 1 FROM pg_constraint WHERE conname = $1 AND conrelid = $2::regclass`, [k.constraint, k.table]);
          if (done.rowCount === 0) await c.query(k.attach);
        }
      },
      `attaching ${keys.map((k) => k.constraint).join(', ')}`,
    );
  }

  private async analyze(quoted: string): Promise<void> {
    try {
      await this.withTarget((c) => c.query(`ANALYZE ${quoted}`), `ANALYZE ${quoted}`);
      this.analyzedCount++;
    } catch (e) {
      // Statistics are not data: reported, and tried again by the final pass over tables without statistics.
      this.emit({ type: 'log', level: 'warn', message: (e as Error).message });
    }
  }

  /** Tables analyzed by the pipeline so far. */
  get analyzed(): number {
    return this.analyzedCount;
  }

  private async withTarget<T>(fn: (c: pg.Client) => Promise<T>, what: string): Promise<T> {
    const c =
      this.idle.pop() ??
      (await connect(this.target, 'target', { options: RESTORE_SESSION_OPTIONS, application_name: 'pgferry-post-data' }));
    let reusable = false;
    try {
      const v = await fn(c);
      reusable = !this.closed;
      return v;
    } catch (e) {
      throw new PgferryError(
        'schema-restore-failed',
        `${what} failed: ${(e as Error).message}`,
        'Fix the cause on the target, then rerun sync; it resumes.',
      );
    } finally {
      if (reusable) this.idle.push(c);
      else await c.end().catch(() => undefined);
    }
  }

  /** End the pooled target sessions; tasks still running end theirs when they finish. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.idle.splice(0).map((c) => c.end().catch(() => undefined)));
  }

  /**
   * A table's rows are all copied: build its indexes now, then analyze it
   * (after them: an expression index gets statistics too, and ANALYZE's lock
   * would wait for the builds anyway). `table` is "schema.table", unquoted;
   * `quoted` its quoted name, when known.
   */
  tableCopied(table: string, quoted?: string): void {
    const tasks = this.split.perTable.get(table);
    if (!tasks || this.reported.has(table)) return;
    this.reported.add(table);
    const builds = tasks.map((task) =>
      this.slots.run(async () => {
        if (this.failure) return;
        const t0 = Date.now();
        if (task.keyConstraint)
          await this.createIndex(
            task.keyConstraint.createIndex,
            task.am,
            `building the index of ${task.keyConstraint.constraint} on ${table}`,
          );
        else if (task.createSql) await this.createIndex(task.createSql, task.am, `building ${task.label} on ${table}`);
        else await this.restore([task.line], `${task.label} on ${table}`, 1, indexBuildOptions(task.am));
        this.emit({ type: 'log', level: 'info', message: `${task.label} on ${table} built in ${((Date.now() - t0) / 1000).toFixed(1)}s` });
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
          if (quoted && !this.failure) await this.slots.run(() => this.analyze(quoted), true);
        })
        .catch((e: Error) => {
          this.failure ??= e;
        }),
    );
  }

  /** Wait for the per-table builds, then restore the rest (FKs, triggers, attachments) with N jobs. */
  async finish(): Promise<RestoreError[]> {
    // Tables never reported (nothing to copy) still get their indexes.
    for (const t of this.split.perTable.keys()) this.tableCopied(t);
    try {
      while (this.running.length > 0) await this.running.shift();
    } finally {
      await this.close();
    }
    if (this.failure) throw this.failure;
    await this.restore(this.split.rest, 'foreign keys, triggers and the rest of post-data', this.slots.capacity);
    return this.errors;
  }
}
