/**
 * Verification: compare source and target table by table — row count, min/max
 * of a single-column primary key, and an order-independent checksum of every
 * row — plus sequences, large objects and materialized views. Both sides are
 * read in the same session settings so text forms compare equal across majors.
 */
import pLimit from 'p-limit';
import type pg from 'pg';
import { connect, ident, type ConnInfo } from './conn';
import { SYSTEM_SCHEMA_FILTER } from './inspect';

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
  readonly mismatches: readonly string[];
  readonly seconds: number;
  readonly rows: number;
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
}

/** The expression a column contributes to a row's checksum. Pure. */
export function checksumExpr(c: ChecksumColumn): string {
  const col = `t.${ident(c.name)}`;
  return c.send ? `${c.send}(${c.cast ? `${col}::${c.cast}` : col})` : col;
}

async function listTables(c: pg.Client, matviews: boolean): Promise<Map<string, TableShape>> {
  // attname::text: "name" takes a collation only from 12 on.
  const r = await c.query<{ schema: string; name: string; columns: ChecksumColumn[] | null; pk: string | null }>(
    `SELECT n.nspname AS schema, c.relname AS name,
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
      WHERE c.relkind IN (${matviews ? `'r', 'm'` : `'r'`}) AND ${SYSTEM_SCHEMA_FILTER}
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
    m.set(key, { key, schema: t.schema, name: t.name, columns, pk: t.pk });
  }
  return m;
}

/** The checksum query for one table: count, and a sum of 60-bit row hashes (order-independent). */
export function tableQuery(t: TableShape, mode: VerifyMode): string {
  const row = t.columns.length > 0 ? `ROW(${t.columns.map(checksumExpr).join(', ')})::text` : `''`;
  const parts = ['count(*)::text AS n'];
  if (mode === 'checksum') parts.push(`coalesce(sum(('x' || substr(md5(${row}), 1, 15))::bit(60)::bigint), 0)::text AS h`);
  // Range of a single-column, non-collatable primary key (collation order may differ between servers).
  if (t.pk) {
    const k = ident(t.pk);
    parts.push(
      `(SELECT ${k}::text FROM ONLY ${t.key} ORDER BY ${k} LIMIT 1) || '..' || (SELECT ${k}::text FROM ONLY ${t.key} ORDER BY ${k} DESC LIMIT 1) AS r`,
    );
  }
  return `SELECT ${parts.join(', ')} FROM ONLY ${t.key} AS t`;
}

interface Measured {
  n: number;
  h: string | null;
  r: string | null;
}

async function measure(pool: pg.Client[], limit: ReturnType<typeof pLimit>, sql: string): Promise<Measured> {
  return limit(async () => {
    const c = pool.pop()!;
    try {
      const row = (await c.query<{ n: string; h?: string; r?: string | null }>(sql)).rows[0]!;
      return { n: Number(row.n), h: row.h ?? null, r: row.r ?? null };
    } finally {
      pool.push(c);
    }
  });
}

async function sequences(c: pg.Client): Promise<Map<string, string>> {
  const names = await c.query<{ key: string }>(
    `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS key
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'S' AND ${SYSTEM_SCHEMA_FILTER}`,
  );
  const m = new Map<string, string>();
  for (const { key } of names.rows) {
    const v = await c.query<{ v: string }>(
      `SELECT last_value::text || CASE WHEN is_called THEN '' ELSE ' (not called)' END AS v FROM ${key}`,
    );
    m.set(key, v.rows[0]?.v ?? '');
  }
  return m;
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
}

/** Compare the databases at `source` and `target`. Read-only on both. */
export async function verify(source: ConnInfo, target: ConnInfo, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const started = Date.now();
  const mode = opts.mode ?? 'checksum';
  const jobs = Math.max(1, opts.jobs ?? 2);
  const open = async (info: ConnInfo, label: string): Promise<pg.Client> => {
    const c = await connect(info, label);
    await c.query(STABLE_SESSION);
    return c;
  };
  const src: pg.Client[] = [];
  const dst: pg.Client[] = [];
  try {
    for (let i = 0; i < jobs; i++) {
      src.push(await open(source, 'source'));
      dst.push(await open(target, 'target'));
    }
    const mv = opts.matviews ?? true;
    const [sTables, tTables] = await Promise.all([listTables(src[0]!, mv), listTables(dst[0]!, mv)]);
    const limitS = pLimit(jobs);
    const limitT = pLimit(jobs);
    let done = 0;
    const tables = await Promise.all(
      [...sTables.values()].map(async (t): Promise<TableComparison> => {
        const other = tTables.get(t.key);
        const s = await measure(src, limitS, tableQuery(t, mode));
        if (!other) {
          opts.onProgress?.(++done, sTables.size);
          return {
            table: t.key,
            sourceRows: s.n,
            targetRows: null,
            sourceChecksum: s.h,
            targetChecksum: null,
            sourcePkRange: s.r,
            targetPkRange: null,
            ok: false,
            problem: 'missing on target',
          };
        }
        // Compare on the source's column list so an extra column on the target shows as a difference.
        const d = await measure(dst, limitT, tableQuery({ ...other, columns: t.columns, pk: t.pk }, mode)).catch((e: Error) => ({
          n: -1,
          h: null,
          r: null,
          err: e.message,
        }));
        opts.onProgress?.(++done, sTables.size);
        const problems: string[] = [];
        if ('err' in d) problems.push(`cannot read on target: ${d.err}`);
        else {
          if (d.n !== s.n) problems.push(`rows differ (source ${s.n}, target ${d.n})`);
          else if (s.h !== d.h) problems.push('checksums differ');
          if (s.r !== d.r) problems.push(`primary key range differs (source ${s.r}, target ${d.r})`);
        }
        return {
          table: t.key,
          sourceRows: s.n,
          targetRows: d.n,
          sourceChecksum: s.h,
          targetChecksum: d.h,
          sourcePkRange: s.r,
          targetPkRange: d.r,
          ok: problems.length === 0,
          problem: problems.length ? problems.join('; ') : null,
        };
      }),
    );
    const [sSeq, tSeq] = await Promise.all([sequences(src[0]!), sequences(dst[0]!)]);
    const seqs = [...sSeq.entries()].map(([name, v]) => {
      const t = tSeq.get(name) ?? null;
      return { name, source: v, target: t, ok: t === v };
    });
    const [sLo, tLo] = await Promise.all([largeObjects(src[0]!), largeObjects(dst[0]!)]);
    const lo = { source: sLo.n, target: tLo.n, sourceHash: sLo.h, targetHash: tLo.h, ok: sLo.n === tLo.n && sLo.h === tLo.h };
    const mismatches = [
      ...tables.filter((t) => !t.ok).map((t) => `${t.table}: ${t.problem}`),
      ...seqs.filter((s) => !s.ok).map((s) => `sequence ${s.name}: source ${s.source}, target ${s.target ?? 'missing'}`),
      ...(lo.ok ? [] : [`large objects: source ${lo.source}, target ${lo.target}${lo.source === lo.target ? ' (contents differ)' : ''}`]),
    ];
    return {
      ok: mismatches.length === 0,
      mode,
      tables: tables.sort((a, b) => a.table.localeCompare(b.table)),
      sequences: seqs,
      largeObjects: lo,
      extraOnTarget: [...tTables.keys()].filter((k) => !sTables.has(k)),
      mismatches,
      seconds: (Date.now() - started) / 1000,
      rows: tables.reduce((s, t) => s + t.sourceRows, 0),
    };
  } finally {
    await Promise.all([...src, ...dst].map((c) => c.end().catch(() => undefined)));
  }
}
