/**
 * Verification: compare source and target table by table — row count, min/max
 * of a single-column primary key, and an order-independent checksum of every
 * row — plus sequences, large objects and materialized views. Both sides are
 * read in the same session settings so text forms compare equal across majors.
 */
import pLimit from 'p-limit';
import type pg from 'pg';
import { connect, ident, literal, openSessions, orClose, type ConnInfo } from './conn';
import { SYSTEM_SCHEMA_FILTER } from './inspect';
import { filterSql, type TableFilter } from './filter';
import { readSequences } from './sequences';

export type VerifyMode = 'count' | 'checksum';

export interface TableComparison {
  readonly table: string;
  readonly sourceRows: number;
  readonly targetRows: number | null;
  readonly sourceChecksum: string | null;
  readonly targetChecksum: string | null;
  readonly sourcePkRange: string | null;
  readonly targetPkRange: string | null;
  readonly ok: boolean;
  readonly problem: string | null;
}

export interface VerifyResult {
  readonly ok: boolean;
  readonly mode: VerifyMode;
  readonly tables: readonly TableComparison[];
  readonly sequences: { readonly name: string; readonly source: string; readonly target: string | null; readonly ok: boolean }[];
  readonly largeObjects: {
    readonly source: number;
    readonly target: number;
    readonly sourceHash: string;
    readonly targetHash: string;
    readonly ok: boolean;
  };
  readonly extraOnTarget: readonly string[];
  /**
   * Materialized views, compared by presence, populated state and the columns
   * they yield, not by rows: one created WITH NO DATA cannot be read, and one stale on the
   * source would differ from its fresh copy (its rows are the refresh's, not
   * data moved).
   */
  readonly matviews: readonly { readonly name: string; readonly ok: boolean; readonly problem: string | null }[];
  readonly mismatches: readonly string[];
  readonly seconds: number;
  readonly rows: number;
  /** Tables whose counts came from the copy's COPY command tags (`counted`), not from reading them again. */
  readonly countedByCopy: number;
  /** With `counted`: whether the source's server had moved past the copy's snapshot, so every table was read again. */
  readonly sourceChanged?: boolean;
}

/** Session settings that make text output identical on both sides. */
export const STABLE_SESSION = `SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres';
SET extra_float_digits = 3; SET bytea_output = 'hex'; SET lc_monetary = 'C'; SET statement_timeout = 0`;

/**
 * One column as the checksum reads it. Floating-point text differs between
 * servers for the same value (PostgreSQL 12 prints the shortest exact form,
 * 11 and older 17 digits under extra_float_digits = 3), so float4/float8,
 * geometric types (made of floats) and arrays of them are read through their
 * binary send function instead: the same bytes on every version.
 */
export interface ChecksumColumn {
  readonly name: string;
  /** The type's send function (e.g. `float8send`), for the types above. */
  readonly send?: string;
  /** The base type to cast to first (a domain's), with the send function. */
  readonly cast?: string;
}

interface TableShape {
  readonly key: string;
  readonly schema: string;
  readonly name: string;
  readonly columns: readonly ChecksumColumn[];
  readonly pk: string | null;
  /** Heap size, for grouping small tables into one query. */
  readonly bytes: number;
}

/** The expression a column contributes to a row's checksum. Pure. */
export function checksumExpr(c: ChecksumColumn): string {
  const col = `t.${ident(c.name)}`;
  return c.send ? `${c.send}(${c.cast ? `${col}::${c.cast}` : col})` : col;
}

async function listTables(c: pg.Client, filter: TableFilter | undefined): Promise<Map<string, TableShape>> {
  // attname::text: "name" takes a collation only from 12 on.
  const r = await c.query<{ schema: string; name: string; columns: ChecksumColumn[] | null; pk: string | null; bytes: string }>(
    `SELECT n.nspname AS schema, c.relname AS name, pg_relation_size(c.oid)::text AS bytes,
            (SELECT json_agg(json_build_object('name', a.attname::text, 'send', s.send, 'cast', s.cast) ORDER BY a.attname::text COLLATE "C")
               FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid
               JOIN pg_type bt ON bt.oid = CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE ty.oid END
               LEFT JOIN pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'
               CROSS JOIN LATERAL (SELECT CASE WHEN bt.oid IN ('float4'::regtype, 'float8'::regtype) OR bt.typcategory = 'G'
                                                 OR et.oid IN ('float4'::regtype, 'float8'::regtype) OR et.typcategory = 'G'
                                               THEN bt.typsend::text END AS send,
                                          CASE WHEN ty.typtype = 'd' THEN format_type(bt.oid, NULL) END AS cast) s
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
            (SELECT a.attname FROM pg_index x JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
              WHERE x.indrelid = c.oid AND x.indisprimary AND x.indnatts = 1 AND a.attcollation = 0) AS pk
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND ${SYSTEM_SCHEMA_FILTER} AND ${filterSql(filter)}
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`,
  );
  const m = new Map<string, TableShape>();
  for (const t of r.rows) {
    const key = `${ident(t.schema)}.${ident(t.name)}`;
    const columns = (t.columns ?? []).map((x) => ({
      name: x.name,
      ...(x.send ? { send: x.send } : {}),
      ...(x.cast ? { cast: x.cast } : {}),
    }));
    m.set(key, { key, schema: t.schema, name: t.name, columns, pk: t.pk, bytes: Number(t.bytes) });
  }
  return m;
}

/** The checksum query for one table: count, and a sum of 60-bit row hashes (order-independent). */
export function tableQuery(t: TableShape, mode: VerifyMode): string {
  const row = t.columns.length > 0 ? `ROW(${t.columns.map(checksumExpr).join(', ')})::text` : `''`;
  const parts = ['count(*)::text AS n'];
  if (mode === 'checksum') parts.push(`coalesce(sum(('x' || substr(md5(${row}), 1, 15))::bit(60)::bigint), 0)::text AS h`);
  // Range of a single-column, non-collatable primary key (collation order may differ between servers).
  // ORDER BY names the table's column (k.): a bare name would sort by the output column, the text cast.
  if (t.pk) {
    const k = ident(t.pk);
    const end = (dir: string): string => `(SELECT k.${k}::text FROM ONLY ${t.key} AS k ORDER BY k.${k}${dir} LIMIT 1)`;
    parts.push(`${end('')} || '..' || ${end(' DESC')} AS r`);
  } else parts.push('NULL::text AS r');
  return `SELECT ${parts.join(', ')} FROM ONLY ${t.key} AS t`;
}

/**
 * Tables grouped for measuring: each large one alone (they run in
 * parallel), small ones (under `smallBytes`) `perBatch` to a query. A cutover
 * verifies inside its write blackout, and a schema of thousands of small
 * tables is mostly per-query cost. Measured on 1,000 tables of 20 rows
 * (PostgreSQL 17, local, one session): one at a time 267–458 ms, 10 to a
 * query 134–218 ms, 25 or more 410–640 ms (planning a wide UNION ALL costs
 * more per branch). Pure.
 */
export function verifyBatches<T extends { readonly bytes: number }>(
  tables: readonly T[],
  smallBytes = 8 * 1024 * 1024,
  perBatch = 10,
): T[][] {
  const out: T[][] = [];
  let small: T[] = [];
  for (const t of [...tables].sort((a, b) => b.bytes - a.bytes)) {
    if (t.bytes >= smallBytes) out.push([t]);
    else {
      small.push(t);
      if (small.length === perBatch) {
        out.push(small);
        small = [];
      }
    }
  }
  if (small.length > 0) out.push(small);
  return out;
}

/** One query measuring every table of a batch: column i names the table. Pure. */
export function batchQuery(tables: readonly TableShape[], mode: VerifyMode): string {
  return tables.map((t, i) => `SELECT ${i} AS i, x.* FROM (${tableQuery(t, mode)}) x`).join('\nUNION ALL\n');
}

interface Measured {
  n: number;
  h: string | null;
  r: string | null;
}

type Outcome = Measured | { readonly err: string };

/**
 * Measure a batch of tables in one query; when it fails (one table
 * unreadable on the target, say), each table again on its own, so the error
 * lands on the table it belongs to.
 */
async function measureBatch(
  pool: pg.Client[],
  limit: ReturnType<typeof pLimit>,
  tables: readonly TableShape[],
  mode: VerifyMode,
): Promise<Outcome[]> {
  type Row = { i?: number; n: string; h?: string; r?: string | null };
  const run = (sql: string): Promise<Row[]> =>
    limit(async () => {
      const c = pool.pop()!;
      try {
        return (await c.query<Row>(sql)).rows;
      } finally {
        pool.push(c);
      }
    });
  const one = (row: Row): Measured => ({ n: Number(row.n), h: row.h ?? null, r: row.r ?? null });
  if (tables.length > 1) {
    const rows = await run(batchQuery(tables, mode)).catch(() => null);
    if (rows) {
      const out: Outcome[] = tables.map(() => ({ err: 'no result' }));
      for (const row of rows) out[Number(row.i)] = one(row);
      return out;
    }
  }
  return Promise.all(
    tables.map((t) =>
      run(tableQuery(t, mode)).then(
        (rows) => one(rows[0]!),
        (e: Error) => ({ err: e.message }),
      ),
    ),
  );
}

async function sequences(c: pg.Client, filter: TableFilter | undefined): Promise<Map<string, string>> {
  return new Map((await readSequences(c, filter)).map((s) => [s.name, s.lastValue + (s.isCalled ? '' : ' (not called)')]));
}

async function largeObjects(c: pg.Client): Promise<{ n: number; h: string }> {
  const r = await c.query<{ n: string; h: string }>(
    `SELECT count(*)::text AS n, coalesce(sum(('x' || substr(md5(m.oid::text || ':' || md5(lo_get(m.oid))), 1, 15))::bit(60)::bigint), 0)::text AS h
       FROM pg_largeobject_metadata m`,
  );
  return { n: Number(r.rows[0]?.n ?? 0), h: r.rows[0]?.h ?? '0' };
}

export interface VerifyOptions {
  readonly mode?: VerifyMode;
  readonly jobs?: number;
  readonly onProgress?: (done: number, total: number) => void;
  /**
   * Compare materialized views too (default). Off after a logical cutover,
   * where the target's are freshly refreshed and the source's may be stale.
   */
  readonly matviews?: boolean;
  /**
   * Read each side inside a snapshot exported by `pg_export_snapshot()`: the
   * two points a streaming verification pins (see streaming/pinned.ts).
   */
  readonly snapshots?: { readonly source: string; readonly target: string };
  /** Tables (qualified, quoted or not) left out: those replication does not carry, copied again inside the cutover's fence. */
  readonly exclude?: readonly string[];
  /** Compare sequences and large objects (default); off while streaming, which carries neither (the cutover copies them). */
  readonly sequencesAndLargeObjects?: boolean;
  /** The run's filter: the relations it leaves out are compared on neither side. */
  readonly filter?: TableFilter;
  /**
   * Sessions the caller has open, one on each side, used as the first pair
   * and left open: over a link of 20 ms two new connections cost about 0.1 s.
   * Not with `snapshots`, which need sessions of their own.
   */
  readonly sessions?: { readonly source: pg.Client; readonly target: pg.Client };
  /**
   * Rows per table (qualified) as a one-time copy's COPY command tags gave
   * them: sent by the source under the copy's snapshot, taken by the target.
   * In count mode these tables are compared by those numbers and not read
   * again (no key range either). Only valid while the source has not changed
   * since that snapshot, which verification checks first (`since`).
   */
  readonly counted?: {
    readonly tables: ReadonlyMap<string, { readonly sent: number; readonly taken: number }>;
    /**
     * The copy's snapshot as `txid_current_snapshot()` gave it: the counts
     * stand only if the source's server shows the same snapshot now.
     */
    readonly since: string;
  };
}

/**
 * Whether nothing was written on a server since the snapshot whose
 * transaction ids are `xids`: a new snapshot is the same only if no
 * transaction with an id (every write has one) began or ended in between.
 * Autovacuum's ANALYZE and writes to other databases count too, so a busy
 * server makes verification count again: never the other way round.
 */
export async function snapshotUnchanged(c: pg.Client, xids: string): Promise<boolean> {
  return (await c.query<{ x: string }>('SELECT txid_current_snapshot()::text AS x')).rows[0]!.x === xids;
}

/** A qualified name as verification keys it (both parts quoted), from quote_ident's or ident's form. Pure. */
export function tableKey(q: string): string {
  const parts: string[] = [];
  const re = /\s*(?:"((?:[^"]|"")*)"|([^."\s]+))\s*(?:\.|$)/y;
  for (let m = re.exec(q); m && parts.length < 3; m = re.exec(q)) {
    parts.push(m[1] !== undefined ? m[1].replace(/""/g, '"') : m[2]!);
    if (re.lastIndex >= q.length) break;
  }
  return parts.map(ident).join('.');
}

/** Compare the databases at `source` and `target`. Read-only on both. */
export async function verify(source: ConnInfo, target: ConnInfo, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const started = Date.now();
  const mode = opts.mode ?? 'checksum';
  const jobs = Math.max(1, opts.jobs ?? 2);
  const open = async (info: ConnInfo, label: string, snapshot?: string): Promise<pg.Client> => {
    const c = await connect(info, label);
    // One round trip for the session's settings and its snapshot.
    await orClose(c, () =>
      c.query(
        `${STABLE_SESSION}${snapshot ? `; BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT ${literal(snapshot)}` : ''}`,
      ),
    );
    return c;
  };
  const src: pg.Client[] = [];
  const dst: pg.Client[] = [];
  const borrowed = opts.sessions && !opts.snapshots ? [opts.sessions.source, opts.sessions.target] : [];
  // Beyond the first pair, sessions only for tables to read: at 20 ms a round trip each costs about 0.1 s.
  const openPairs = async (n: number): Promise<void> => {
    const opened = await openSessions([
      ...Array.from({ length: n }, () => () => open(source, 'source', opts.snapshots?.source)),
      ...Array.from({ length: n }, () => () => open(target, 'target', opts.snapshots?.target)),
    ]);
    src.push(...opened.slice(0, n));
    dst.push(...opened.slice(n));
  };
  try {
    if (borrowed.length > 0) {
      await Promise.all(borrowed.map((c) => c.query(STABLE_SESSION)));
      src.push(borrowed[0]!);
      dst.push(borrowed[1]!);
    } else await openPairs(1);
    const byCopy = mode === 'count' && !opts.snapshots ? opts.counted : undefined;
    const [sTables, tTables, unchanged] = await Promise.all([
      listTables(src[0]!, opts.filter),
      listTables(dst[0]!, opts.filter),
      byCopy ? snapshotUnchanged(src[0]!, byCopy.since) : false,
    ]);
    for (const t of opts.exclude ?? []) sTables.delete(tableKey(t));
    const counted = new Map(unchanged && byCopy ? [...byCopy.tables].map(([k, v]) => [tableKey(k), v] as const) : []);
    const byTags: TableComparison[] = [];
    const toMeasure: TableShape[] = [];
    for (const t of sTables.values()) {
      const n = counted.get(t.key);
      if (!n) {
        toMeasure.push(t);
        continue;
      }
      const problem = !tTables.has(t.key)
        ? 'missing on target'
        : n.sent !== n.taken
          ? `rows differ (source sent ${n.sent} under the copy's snapshot, target took ${n.taken})`
          : null;
      byTags.push({
        table: t.key,
        sourceRows: n.sent,
        targetRows: tTables.has(t.key) ? n.taken : null,
        sourceChecksum: null,
        targetChecksum: null,
        sourcePkRange: null,
        targetPkRange: null,
        ok: problem === null,
        problem,
      });
    }
    const batchList = verifyBatches(toMeasure);
    await openPairs(Math.max(0, Math.min(jobs, batchList.length) - 1));
    const limitS = pLimit(src.length);
    const limitT = pLimit(dst.length);
    let done = byTags.length;
    const compare = (t: TableShape, s: Measured, d: Outcome | undefined): TableComparison => {
      const problems: string[] = [];
      if (!d) problems.push('missing on target');
      else if ('err' in d) problems.push(`cannot read on target: ${d.err}`);
      else {
        if (d.n !== s.n) problems.push(`rows differ (source ${s.n}, target ${d.n})`);
        else if (s.h !== d.h) problems.push('checksums differ');
        if (s.r !== d.r) problems.push(`primary key range differs (source ${s.r}, target ${d.r})`);
      }
      const m = d && !('err' in d) ? d : null;
      return {
        table: t.key,
        sourceRows: s.n,
        targetRows: !d ? null : m ? m.n : -1,
        sourceChecksum: s.h,
        targetChecksum: m ? m.h : null,
        sourcePkRange: s.r,
        targetPkRange: m ? m.r : null,
        ok: problems.length === 0,
        problem: problems.length ? problems.join('; ') : null,
      };
    };
    const batches = await Promise.all(
      batchList.map(async (batch): Promise<TableComparison[]> => {
        const s = await measureBatch(src, limitS, batch, mode);
        const bad = s.find((x): x is { err: string } => 'err' in x);
        if (bad) throw new Error(`reading the source failed: ${bad.err}`);
        // On the target, the source's column list and key, so an extra column on the target shows as a difference.
        const present = batch.filter((t) => tTables.has(t.key));
        const d = await measureBatch(
          dst,
          limitT,
          present.map((t) => ({ ...tTables.get(t.key)!, columns: t.columns, pk: t.pk })),
          mode,
        );
        const onTarget = new Map(present.map((t, i) => [t.key, d[i]!]));
        done += batch.length;
        opts.onProgress?.(done, sTables.size);
        return batch.map((t, i) => compare(t, s[i] as Measured, onTarget.get(t.key)));
      }),
    );
    const tables = [...byTags, ...batches.flat()];
    const whole = opts.sequencesAndLargeObjects ?? true;
    const [sSeq, tSeq] = whole
      ? await Promise.all([sequences(src[0]!, opts.filter), sequences(dst[0]!, opts.filter)])
      : [new Map<string, string>(), new Map<string, string>()];
    const seqs = [...sSeq.entries()].map(([name, v]) => {
      const t = tSeq.get(name) ?? null;
      return { name, source: v, target: t, ok: t === v };
    });
    const [sLo, tLo] = whole
      ? await Promise.all([largeObjects(src[0]!), largeObjects(dst[0]!)])
      : [
          { n: 0, h: '0' },
          { n: 0, h: '0' },
        ];
    const lo = { source: sLo.n, target: tLo.n, sourceHash: sLo.h, targetHash: tLo.h, ok: sLo.n === tLo.n && sLo.h === tLo.h };
    const matviews =
      (opts.matviews ?? true) ? compareMatviews(await matviewStates(src[0]!, opts.filter), await matviewStates(dst[0]!, opts.filter)) : [];
    const mismatches = [
      ...tables.filter((t) => !t.ok).map((t) => `${t.table}: ${t.problem}`),
      ...matviews.filter((m) => !m.ok).map((m) => `materialized view ${m.name}: ${m.problem}`),
      ...seqs.filter((s) => !s.ok).map((s) => `sequence ${s.name}: source ${s.source}, target ${s.target ?? 'missing'}`),
      ...(lo.ok ? [] : [`large objects: source ${lo.source}, target ${lo.target}${lo.source === lo.target ? ' (contents differ)' : ''}`]),
    ];
    return {
      ok: mismatches.length === 0,
      mode,
      tables: tables.sort((a, b) => a.table.localeCompare(b.table)),
      sequences: seqs,
      largeObjects: lo,
      extraOnTarget: [...tTables.keys()].filter((k) => !sTables.has(k) && !(opts.exclude ?? []).some((x) => tableKey(x) === k)),
      matviews,
      mismatches,
      seconds: (Date.now() - started) / 1000,
      rows: tables.reduce((s, t) => s + t.sourceRows, 0),
      countedByCopy: byTags.length,
      ...(byCopy ? { sourceChanged: !unchanged } : {}),
    };
  } finally {
    await Promise.all([...src, ...dst].filter((c) => !borrowed.includes(c)).map((c) => c.end().catch(() => undefined)));
  }
}

interface MatviewState {
  readonly populated: boolean;
  readonly definition: string;
}

/**
 * Every materialized view's populated state and its definition as the columns
 * it yields (names and types): the query text itself is deparsed differently
 * by each major (14 and 17 print the same view differently).
 */
async function matviewStates(c: pg.Client, filter: TableFilter | undefined): Promise<Map<string, MatviewState>> {
  const r = await c.query<{ key: string; populated: boolean; definition: string }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS key, c.relispopulated AS populated,
            coalesce((SELECT string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
                        FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '') AS definition
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'm' AND n.nspname <> 'pgrelocate' AND ${filterSql(filter)}`,
  );
  return new Map(r.rows.map((x) => [x.key, { populated: x.populated, definition: x.definition }]));
}

/** Materialized views compared by presence, populated state and columns. Pure. */
export function compareMatviews(
  source: ReadonlyMap<string, MatviewState>,
  target: ReadonlyMap<string, MatviewState>,
): { name: string; ok: boolean; problem: string | null }[] {
  return [...source.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, s]) => {
      const t = target.get(name);
      const problem = !t
        ? 'missing on target'
        : s.populated !== t.populated
          ? `${s.populated ? 'populated' : 'not populated (WITH NO DATA)'} on the source, ${t.populated ? 'populated' : 'not populated'} on the target`
          : s.definition !== t.definition
            ? `columns differ (source ${s.definition}; target ${t.definition})`
            : null;
      return { name, ok: problem === null, problem };
    });
}
