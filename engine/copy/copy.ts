/**
 * The initial copy under the exported snapshot: tables largest first over N
 * workers, large tables split into primary-key ranges (or ctid block ranges
 * on 14+ when there is no integer key), each part streamed source → target
 * with COPY (binary when every column type allows it, text otherwise), its
 * protocol messages passed through as they came (relay.ts). Node streams give
 * back-pressure: nothing is held whole in memory.
 */
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { connect, dropConnection, openSessions, orClose, ident, type ConnInfo } from '../conn';
import { qualified, type TableInfo } from '../inspect';
import { ProgressMeter, type Emit } from '../runner';
import { FramedCopyIn, FramedCopyOut } from './relay';
import type { Slots } from './slots';

export interface TableCopyInfo {
  readonly table: TableInfo;
  readonly columns: readonly string[];
  /** Every column type has a binary format that does not embed local type OIDs. */
  readonly binary: boolean;
  /** A single-column integer primary key, usable for range splits. */
  readonly intKey: string | null;
}

export interface CopyPart {
  readonly table: TableCopyInfo;
  /** SQL condition for this part, or null for the whole table. */
  readonly where: string | null;
  readonly estBytes: number;
  readonly label: string;
}

export interface CopyOptions {
  readonly jobs: number;
  /** Tables larger than this are split (bytes); 0 = `autoSplitBytes`. */
  readonly splitBytes: number;
}

/**
 * The automatic split threshold: about an eighth of a job's share of the data,
 * between 64 MiB and 1 GiB. The largest table then copies on every worker at
 * once and finishes early, so its (often longest) index builds start while the
 * rest is still copying. Pure.
 */
export function autoSplitBytes(totalBytes: number, jobs: number): number {
  return Math.min(1024 ** 3, Math.max(64 * 1024 ** 2, Math.floor(totalBytes / Math.max(1, jobs) / 8)));
}

export interface CopyResult {
  readonly tables: number;
  readonly parts: number;
  readonly rows: number;
  readonly bytes: number;
  readonly seconds: number;
  readonly binaryTables: number;
  readonly textTables: readonly string[];
}

/** Column lists and COPY format for each table, read on the source in one query (thousands of tables are common). */
export async function copyInfo(c: pg.Client, tables: readonly TableInfo[], versionNum: number): Promise<TableCopyInfo[]> {
  if (tables.length === 0) return [];
  const generated = versionNum >= 120000 ? `AND a.attgenerated = ''` : '';
  const r = await c.query<{ i: number; cols: string[] | null; binary: boolean | null; intkey: string | null }>(
    `SELECT t.i, cols.cols, cols.binary,
            (SELECT ka.attname FROM pg_index x JOIN pg_attribute ka ON ka.attrelid = x.indrelid AND ka.attnum = x.indkey[0]
              WHERE x.indrelid = t.oid AND x.indisprimary AND x.indnatts = 1 AND ka.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)) AS intkey
       FROM (SELECT n.ord::int AS i, n.name::regclass::oid AS oid FROM unnest($1::text[]) WITH ORDINALITY AS n(name, ord)) t
       LEFT JOIN LATERAL (
         SELECT array_agg(a.attname::text ORDER BY a.attnum) AS cols,
                bool_and((ty.oid < 16384 OR ty.typtype = 'e' OR (ty.typtype = 'd' AND ty.typbasetype < 16384 AND ty.typndims = 0))
                         -- Built-in types without a binary form (aclitem) and arrays of them go as text.
                         AND NOT EXISTS (SELECT 1 FROM pg_type x
                                          WHERE x.oid IN (CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE ty.oid END, ty.typelem,
                                                          (SELECT b.typelem FROM pg_type b WHERE b.oid = ty.typbasetype))
                                            AND (x.typsend::oid = 0 OR x.typreceive::oid = 0))) AS binary
           FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid
          WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped ${generated}) cols ON true
      ORDER BY t.i`,
    [tables.map(qualified)],
  );
  return r.rows.map((row) => ({ table: tables[row.i - 1]!, columns: row.cols ?? [], binary: row.binary ?? true, intKey: row.intkey }));
}

/**
 * Split tables into parts. Pure: key ranges come in as [min, max] per table.
 * Parts are ordered largest first so the long ones start early.
 */
export function planParts(
  infos: readonly TableCopyInfo[],
  opts: CopyOptions & { readonly sourceVersionNum: number },
  keyRanges: ReadonlyMap<string, readonly [bigint, bigint]>,
): CopyPart[] {
  const parts: CopyPart[] = [];
  for (const info of infos) {
    const t = info.table;
    const name = qualified(t);
    const n = Math.min(Math.max(1, Math.ceil(t.bytes / opts.splitBytes)), Math.max(2, opts.jobs * 4));
    const range = keyRanges.get(name);
    if (n > 1 && info.intKey && range) {
      const [lo, hi] = range;
      const span = hi - lo + 1n;
      const step = (span + BigInt(n) - 1n) / BigInt(n);
      const k = ident(info.intKey);
      for (let i = 0; i < n; i++) {
        const a = lo + step * BigInt(i);
        const b = a + step;
        const where = i === 0 ? `${k} < ${b}` : i === n - 1 ? `${k} >= ${a}` : `${k} >= ${a} AND ${k} < ${b}`;
        parts.push({ table: info, where, estBytes: t.bytes / n, label: `${name} [${i + 1}/${n}]` });
      }
    } else if (n > 1 && opts.sourceVersionNum >= 140000 && t.bytes > 0) {
      // TID range scans (14+) read only their blocks.
      const pages = Math.ceil(t.bytes / 8192);
      const per = Math.ceil(pages / n);
      for (let i = 0; i < n; i++) {
        const a = i * per;
        const b = a + per;
        const where =
          i === 0
            ? `ctid < '(${b},0)'::tid`
            : i === n - 1
              ? `ctid >= '(${a},0)'::tid`
              : `ctid >= '(${a},0)'::tid AND ctid < '(${b},0)'::tid`;
        parts.push({ table: info, where, estBytes: t.bytes / n, label: `${name} [${i + 1}/${n}]` });
      }
    } else {
      parts.push({ table: info, where: null, estBytes: t.bytes, label: name });
    }
  }
  return parts.sort((a, b) => b.estBytes - a.estBytes);
}

export function copyStatements(part: CopyPart): { out: string; in: string } {
  const name = qualified(part.table.table);
  const cols = part.table.columns.map(ident).join(', ');
  // A table with no columns (or only generated ones) still has rows: no column list, which COPY then takes
  // as every column but the generated ones.
  const list = cols ? ` (${cols})` : '';
  const fmt = part.table.binary ? ' (FORMAT binary)' : '';
  const out = part.where
    ? `COPY (SELECT ${cols} FROM ONLY ${name} WHERE ${part.where}) TO STDOUT${fmt}`
    : `COPY ${name}${list} TO STDOUT${fmt}`;
  return { out, in: `COPY ${name}${list} FROM STDIN${fmt}` };
}

/** Rows of one part, from the two COPY command tags: what the source sent under the snapshot, what the target took. */
export interface PartCount {
  readonly sent: number;
  readonly taken: number;
}

async function copyPart(src: pg.Client, dst: pg.Client, part: CopyPart, onBytes: (n: number) => void): Promise<PartCount> {
  const sql = copyStatements(part);
  const reader = src.query(new FramedCopyOut(sql.out, onBytes));
  // The source's command tag may arrive after its data has ended; it is in by its ReadyForQuery, which pg
  // hands to the active query (a method the stream has but its types leave out).
  const hooks = reader as unknown as { handleReadyForQuery: (...a: unknown[]) => void };
  const sent = new Promise<number>((resolve) => {
    const ready = hooks.handleReadyForQuery.bind(reader);
    hooks.handleReadyForQuery = (...a) => {
      ready(...a);
      resolve(reader.rowCount);
    };
  });
  const writer = dst.query(new FramedCopyIn(sql.in));
  await pipeline(reader, writer);
  return { sent: await sent, taken: writer.rowCount ?? 0 };
}

/** Open a source session inside the exported snapshot. */
export async function snapshotSession(source: ConnInfo, snapshot: string): Promise<pg.Client> {
  const c = await connect(source, 'source', { application_name: 'pgrelocate-copy' });
  // One round trip for both.
  await orClose(c, () =>
    c.query(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '${snapshot.replace(/'/g, '')}'`),
  );
  return c;
}

/** A copy's sessions: on the source inside its snapshot, on the target with asynchronous commit. */
export interface CopySessions {
  readonly sources: readonly pg.Client[];
  readonly targets: readonly pg.Client[];
}

/**
 * Open `jobs` sessions on each side, all at once. Every source session imports
 * the snapshot now, while the exporting connection is still open.
 */
export async function openCopySessions(source: ConnInfo, target: ConnInfo, snapshot: string, jobs: number): Promise<CopySessions> {
  const opened = await openSessions([
    ...Array.from({ length: jobs }, () => () => snapshotSession(source, snapshot)),
    ...Array.from(
      { length: jobs },
      () => () => connect(target, 'target', { application_name: 'pgrelocate-copy', options: '-c synchronous_commit=off' }),
    ),
  ]);
  return { sources: opened.slice(0, jobs), targets: opened.slice(jobs) };
}

/** Copy every table's rows under `snapshot`. The target tables must exist and be empty. */
export async function copyTables(
  source: ConnInfo,
  target: ConnInfo,
  snapshot: string,
  tables: readonly TableInfo[],
  opts: CopyOptions & {
    readonly sourceVersionNum: number;
    readonly onTableCopied?: (t: TableInfo) => void;
    /** Each part's rows by the command tags, for verification without reading the tables again. */
    readonly onPartCounted?: (t: TableInfo, count: PartCount) => void;
    /** Shared with the index builds of the post-data pipeline: each part holds one slot while it streams. */
    readonly slots?: Slots;
    /** The sessions, opened beforehand by openCopySessions (`jobs` of each); closed here as those opened here are. */
    readonly sessions?: CopySessions;
  },
  emit: Emit,
): Promise<CopyResult> {
  const started = Date.now();
  const jobs = Math.max(1, opts.jobs);
  const srcs: pg.Client[] = [];
  const dsts: pg.Client[] = [];
  try {
    const opened = opts.sessions ?? (await openCopySessions(source, target, snapshot, jobs));
    srcs.push(...opened.sources);
    dsts.push(...opened.targets);
    const infos = await copyInfo(srcs[0]!, tables, opts.sourceVersionNum);
    const splitBytes =
      opts.splitBytes > 0
        ? opts.splitBytes
        : autoSplitBytes(
            tables.reduce((a, t) => a + t.bytes, 0),
            jobs,
          );
    const ranges = new Map<string, readonly [bigint, bigint]>();
    for (const info of infos) {
      if (!info.intKey || info.table.bytes <= splitBytes) continue;
      const k = ident(info.intKey);
      const r = await srcs[0]!.query<{ lo: string | null; hi: string | null }>(
        `SELECT min(${k})::text AS lo, max(${k})::text AS hi FROM ONLY ${qualified(info.table)}`,
      );
      const row = r.rows[0];
      if (row?.lo != null && row.hi != null) ranges.set(qualified(info.table), [BigInt(row.lo), BigInt(row.hi)]);
    }
    const parts = planParts(infos, { ...opts, splitBytes }, ranges);
    const partsLeft = new Map<TableInfo, number>();
    for (const p of parts) partsLeft.set(p.table.table, (partsLeft.get(p.table.table) ?? 0) + 1);
    const total = parts.reduce((s, p) => s + p.estBytes, 0);
    const meter = new ProgressMeter(emit, 'copy', Math.max(1, Math.round(total)), 'bytes');
    let bytes = 0;
    let rows = 0;
    let tablesDone = 0;
    const queue = [...parts];
    const worker = async (i: number): Promise<void> => {
      for (let p = queue.shift(); p; p = queue.shift()) {
        const part = p;
        const release = opts.slots ? await opts.slots.acquire() : () => undefined;
        try {
          // Added after the await: `rows += await …` reads rows before the copy and loses the other workers' rows.
          const copied = await copyPart(srcs[i]!, dsts[i]!, part, (n) => {
            bytes += n;
            meter.update(Math.min(bytes, Math.round(total)), `${tablesDone}/${infos.length} tables; ${part.label}`);
          });
          rows += copied.taken;
          opts.onPartCounted?.(part.table.table, copied);
        } finally {
          release();
        }
        const left = (partsLeft.get(part.table.table) ?? 1) - 1;
        partsLeft.set(part.table.table, left);
        if (left === 0) {
          tablesDone++;
          opts.onTableCopied?.(part.table.table);
        }
      }
    };
    await Promise.all(srcs.map((_, i) => worker(i)));
    meter.update(Math.round(total), undefined, true);
    return {
      tables: infos.length,
      parts: parts.length,
      rows,
      bytes,
      seconds: (Date.now() - started) / 1000,
      binaryTables: infos.filter((x) => x.binary).length,
      textTables: infos.filter((x) => !x.binary).map((x) => qualified(x.table)),
    };
  } catch (e) {
    // A part that failed may have left its sessions mid-COPY (and the other workers are still in theirs).
    for (const c of [...srcs, ...dsts]) dropConnection(c);
    throw e;
  } finally {
    await Promise.all(srcs.map((c) => c.query('COMMIT').catch(() => undefined)));
    await Promise.all([...srcs, ...dsts].map((c) => c.end().catch(() => undefined)));
  }
}
