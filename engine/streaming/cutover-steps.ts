/**
 * What the cutover copies because replication does not carry it: sequence
 * values, unlogged tables, key-less tables a strategy cannot stream, large
 * objects, and materialized views refreshed on the target. Tables and large
 * objects are copied before the fence; inside it only what changed since is
 * copied again, found by the rows' transaction ids (a scan, no transfer).
 */
import type pg from 'pg';
import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { ident, literal, serverVersionNum } from '../conn';
import { FramedCopyIn, FramedCopyOut } from '../copy/relay';
import { filterSql, type TableFilter } from '../filter';
import { readSequences, type SequenceValue } from '../sequences';

/**
 * Set every target sequence to the source's value. Returns how many. This
 * runs inside the write blackout: values read in batches (readSequences), set
 * with one statement, not two round trips per sequence.
 */
export async function syncSequences(src: pg.Client, dst: pg.Client, filter?: TableFilter): Promise<number> {
  return setSequences(dst, await readSequences(src, filter));
}

/** Set the target's sequences to values read from the source, in one statement. */
export async function setSequences(dst: pg.Client, values: readonly SequenceValue[]): Promise<number> {
  if (values.length > 0)
    await dst.query(`SELECT pg_catalog.setval(q::regclass, v::bigint, c) FROM unnest($1::text[], $2::text[], $3::bool[]) AS t(q, v, c)`, [
      values.map((s) => s.name),
      values.map((s) => s.lastValue),
      values.map((s) => s.isCalled),
    ]);
  return values.length;
}

/** Replace the target's rows of unlogged tables with the source's (they are not replicated). */
export async function copyUnlogged(src: pg.Client, dst: pg.Client, tables: readonly string[]): Promise<number> {
  let rows = 0;
  const v = tables.length > 0 ? await serverVersionNum(src) : 0;
  const generated = v >= 120000 ? `AND attgenerated = ''` : '';
  for (const t of tables) {
    // By name: pg_dump may order an inheritance child's columns differently on the target (inherited ones first).
    const cols = (
      await src.query<{ c: string | null }>(
        `SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) AS c FROM pg_attribute
          WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ${generated}`,
        [t],
      )
    ).rows[0]?.c;
    const list = cols ? ` (${cols})` : '';
    // ONLY: an inheritance parent copied after its child must not empty the child.
    await dst.query(`TRUNCATE ONLY ${t}`);
    const writer = dst.query(new FramedCopyIn(`COPY ${t}${list} FROM STDIN`));
    await pipeline(src.query(new FramedCopyOut(`COPY ${t}${list} TO STDOUT`)), writer);
    rows += writer.rowCount ?? 0;
  }
  return rows;
}

/** A large object as copied: its size and md5, to tell later whether it changed. */
export interface CopiedObject {
  readonly size: number;
  readonly md5: string;
}

/** Large objects per round trip, with up to LO_HEAD bytes of each: at most 8 MiB read at once. */
const LO_BATCH = 64;
const LO_HEAD = 128 * 1024;

/**
 * Copy large objects (same OIDs), replacing the target's: every one, or only
 * `only` (the others are left as they are). Chunked: no object is held whole.
 * Returns each one's size and md5, computed as it streams.
 *
 * In batches: the first LO_HEAD bytes of LO_BATCH objects in one query, made
 * on the target in one more, owners and comments in a third; only what is
 * longer is read on in chunks. One object at a time took ten round trips
 * each: over a link of 20 ms, 10,000 small objects would take ten minutes,
 * and inside a cutover's fence.
 */
export async function copyLargeObjects(
  src: pg.Client,
  dst: pg.Client,
  opts: { readonly only?: readonly string[]; readonly chunk?: number } = {},
): Promise<{ count: number; bytes: number; objects: Record<string, CopiedObject> }> {
  const chunk = opts.chunk ?? 4 * 1024 * 1024;
  const head = Math.min(LO_HEAD, chunk);
  const only = opts.only ? [...opts.only] : null;
  const los = await src.query<{ oid: string; owner: string; comment: string | null }>(
    `SELECT oid::text, pg_get_userbyid(lomowner) AS owner, obj_description(oid, 'pg_largeobject') AS comment
       FROM pg_largeobject_metadata ${only ? 'WHERE oid = ANY($1::oid[])' : ''} ORDER BY oid`,
    only ? [only] : [],
  );
  if (only) await dst.query(`SELECT lo_unlink(oid) FROM pg_largeobject_metadata WHERE oid = ANY($1::oid[])`, [only]);
  else await dst.query(`SELECT lo_unlink(oid) FROM pg_largeobject_metadata`);
  // An owner the target lacks keeps the target's default (the copying role), as before.
  const owners = new Set(
    los.rows.length === 0
      ? []
      : (
          await dst.query<{ r: string }>(`SELECT rolname AS r FROM pg_roles WHERE rolname = ANY($1)`, [
            [...new Set(los.rows.map((l) => l.owner))],
          ])
        ).rows.map((x) => x.r),
  );
  let bytes = 0;
  const objects: Record<string, CopiedObject> = {};
  for (let at = 0; at < los.rows.length; at += LO_BATCH) {
    const batch = los.rows.slice(at, at + LO_BATCH);
    const oids = batch.map((l) => l.oid);
    // Each object read whole under one snapshot; a batch's target transaction holds few locks.
    await src.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await dst.query('BEGIN');
    try {
      const heads = (
        await src.query<{ b: Buffer }>(`SELECT lo_get(o, 0, $2) AS b FROM unnest($1::oid[]) WITH ORDINALITY AS t(o, i) ORDER BY i`, [
          oids,
          head,
        ])
      ).rows.map((r) => r.b);
      await dst.query(`SELECT lo_from_bytea(o, d) FROM unnest($1::oid[], $2::bytea[]) AS t(o, d)`, [oids, heads]);
      for (const [k, lo] of batch.entries()) {
        const hash = createHash('md5').update(heads[k]!);
        let size = heads[k]!.length;
        // As long as its head or longer: read on in chunks until one comes short.
        for (let more = size === head; more;) {
          const part = (await src.query<{ b: Buffer }>(`SELECT lo_get($1::oid, $2, $3) AS b`, [lo.oid, size, chunk])).rows[0]!.b;
          if (part.length > 0) await dst.query(`SELECT lo_put($1::oid, $2, $3)`, [lo.oid, size, part]);
          hash.update(part);
          size += part.length;
          more = part.length === chunk;
        }
        bytes += size;
        objects[lo.oid] = { size, md5: hash.digest('hex') };
      }
      const meta = batch.flatMap((lo) => [
        ...(owners.has(lo.owner) ? [`ALTER LARGE OBJECT ${Number(lo.oid)} OWNER TO ${ident(lo.owner)}`] : []),
        ...(lo.comment !== null ? [`COMMENT ON LARGE OBJECT ${Number(lo.oid)} IS ${literal(lo.comment)}`] : []),
      ]);
      if (meta.length > 0) await dst.query(meta.join(';\n'));
      await dst.query('COMMIT');
      await src.query('COMMIT');
    } catch (e) {
      await dst.query('ROLLBACK').catch(() => undefined);
      await src.query('ROLLBACK').catch(() => undefined);
      throw e;
    }
  }
  return { count: los.rows.length, bytes, objects };
}

/**
 * The source's change horizon: every transaction older than it had ended
 * before now, so a copy started after this holds its work. A row whose xmin
 * is at or past it may be missing from such a copy: "changed since".
 */
export async function changeHorizon(src: pg.Client): Promise<string> {
  // txid_* rather than pg_current_snapshot(): the same on 9.4 and on 17. The 32-bit xid is what xmin compares with.
  const r = await src.query<{ x: string }>(`SELECT (txid_snapshot_xmin(txid_current_snapshot()) % 4294967296)::text AS x`);
  return r.rows[0]!.x;
}

/** What the pre-copy put on the target, for the delta inside the fence. */
export interface Precopy {
  readonly horizon: string;
  /** Rows copied per table (quoted name). */
  readonly rows: Readonly<Record<string, number>>;
  readonly largeObjects: Readonly<Record<string, CopiedObject>>;
}

/**
 * Before the fence, while writes go on: the tables replication does not carry
 * and every large object copied whole. Inside the fence `changedTables` and
 * `changedLargeObjects` say what to copy again.
 */
export async function precopy(src: pg.Client, dst: pg.Client, tables: readonly string[]): Promise<Precopy> {
  const horizon = await changeHorizon(src);
  const rows: Record<string, number> = {};
  for (const t of tables) rows[t] = await copyUnlogged(src, dst, [t]);
  const { objects } = await copyLargeObjects(src, dst);
  return { horizon, rows, largeObjects: objects };
}

/**
 * Tables written since the pre-copy: a row with an xmin at or past the
 * horizon (inserted or updated since), or fewer or more rows than were copied
 * (deleted). One scan per table on the source, nothing transferred; inside
 * the fence the tables are locked, so the answer holds until the switch.
 */
export async function changedTables(src: pg.Client, pre: Precopy, tables: readonly string[]): Promise<string[]> {
  const changed: string[] = [];
  // In batches: one round trip for many tables, without one statement the size of the catalog.
  for (let i = 0; i < tables.length; i += 100) {
    const batch = tables.slice(i, i + 100);
    const sql = batch
      .map(
        (t, j) =>
          `SELECT ${j} AS i, count(*)::bigint AS n, count(*) FILTER (WHERE age(xmin) <= age($1::text::xid))::bigint AS changed FROM ONLY ${t}`,
      )
      .join(' UNION ALL ');
    const r = await src.query<{ i: number; n: string; changed: string }>(sql, [pre.horizon]);
    for (const row of r.rows) {
      const t = batch[row.i]!;
      if (pre.rows[t] === undefined || Number(row.n) !== pre.rows[t] || Number(row.changed) > 0) changed.push(t);
    }
  }
  return changed;
}

/** Above this a large object's md5 is not computed by the server (lo_get holds it whole): it is copied again instead. */
const HASHED_OBJECT_LIMIT = 256 * 1024 * 1024;

/**
 * Large objects created, removed or written since the pre-copy. Created and
 * removed: the list. Written: a page of pg_largeobject with an xmin at or past
 * the horizon, where the role may read that catalog (a superuser, or
 * lo_compat_privileges); elsewhere the size, then the md5 the source computes,
 * against the copy's. An owner changed shows in the metadata's xmin.
 */
export async function changedLargeObjects(src: pg.Client, pre: Precopy): Promise<{ copy: string[]; removed: string[] }> {
  const now = await src.query<{ oid: string; size: string; meta: boolean }>(
    `SELECT oid::text, lo_lseek64(lo_open(oid, 262144), 0, 2)::text AS size, age(xmin) <= age($1::text::xid) AS meta
       FROM pg_largeobject_metadata`,
    [pre.horizon],
  );
  const present = new Set(now.rows.map((r) => r.oid));
  const removed = Object.keys(pre.largeObjects).filter((o) => !present.has(o));
  const copy = new Set<string>();
  const same: string[] = [];
  for (const r of now.rows) {
    const before = pre.largeObjects[r.oid];
    if (!before || r.meta || Number(r.size) !== before.size) copy.add(r.oid);
    else same.push(r.oid);
  }
  if (same.length === 0) return { copy: [...copy], removed };
  const readable = (await src.query<{ ok: boolean }>(`SELECT has_table_privilege('pg_catalog.pg_largeobject', 'SELECT') AS ok`)).rows[0]!
    .ok;
  if (readable) {
    const written = await src.query<{ oid: string }>(
      `SELECT DISTINCT loid::text AS oid FROM pg_catalog.pg_largeobject WHERE age(xmin) <= age($1::text::xid) AND loid = ANY($2::oid[])`,
      [pre.horizon, same],
    );
    for (const r of written.rows) copy.add(r.oid);
  } else {
    const big = same.filter((o) => pre.largeObjects[o]!.size > HASHED_OBJECT_LIMIT);
    for (const o of big) copy.add(o);
    const hashed = await src.query<{ oid: string; md5: string }>(
      `SELECT oid::text, md5(lo_get(oid)) AS md5 FROM pg_largeobject_metadata WHERE oid = ANY($1::oid[])`,
      [same.filter((o) => pre.largeObjects[o]!.size <= HASHED_OBJECT_LIMIT)],
    );
    for (const r of hashed.rows) if (r.md5 !== pre.largeObjects[r.oid]!.md5) copy.add(r.oid);
  }
  return { copy: [...copy], removed };
}

/**
 * Refresh on the target every materialized view that is populated on the
 * source (a schema-only restore creates them empty). One may read another:
 * those that fail for an unpopulated dependency are retried after the rest.
 */
export async function refreshMatviews(src: pg.Client, dst: pg.Client, filter?: TableFilter): Promise<number> {
  const mv = await src.query<{ q: string }>(
    `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS q FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'm' AND c.relispopulated AND ${filterSql(filter)} ORDER BY 1`,
  );
  let pending = mv.rows.map((r) => r.q);
  for (let round = 0; pending.length > 0; round++) {
    const failed: string[] = [];
    let lastError: unknown = null;
    for (const q of pending) {
      try {
        await dst.query(`REFRESH MATERIALIZED VIEW ${q}`);
      } catch (e) {
        if ((e as { code?: string }).code !== '55000' || round > mv.rows.length) throw e;
        failed.push(q);
        lastError = e;
      }
    }
    if (failed.length === pending.length) throw lastError;
    pending = failed;
  }
  return mv.rows.length;
}
