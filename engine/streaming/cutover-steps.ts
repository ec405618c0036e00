/**
 * What the cutover copies while the source is fenced: sequence values, the
 * contents of unlogged tables and large objects (none of which logical
 * replication carries), then materialized views refreshed on the target.
 */
import type pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { pipeline } from 'node:stream/promises';
import { ident, literal } from '../conn';
import { readSequences } from '../sequences';

/**
 * Set every target sequence to the source's value. Returns how many. This
 * runs inside the write blackout: values read in batches (readSequences), set
 * with one statement, not two round trips per sequence.
 */
export async function syncSequences(src: pg.Client, dst: pg.Client): Promise<number> {
  const values = await readSequences(src);
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
  const v =
    tables.length > 0 ? Number((await src.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`)).rows[0]!.v) : 0;
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
    const writer = dst.query(copyFrom(`COPY ${t}${list} FROM STDIN`));
    await pipeline(src.query(copyTo(`COPY ${t}${list} TO STDOUT`)), writer);
    rows += writer.rowCount ?? 0;
  }
  return rows;
}

/** Copy every large object (same OIDs), replacing the target's. Chunked: no object is held whole. */
export async function copyLargeObjects(src: pg.Client, dst: pg.Client, chunk = 4 * 1024 * 1024): Promise<{ count: number; bytes: number }> {
  const los = await src.query<{ oid: string; owner: string; comment: string | null }>(
    `SELECT oid::text, pg_get_userbyid(lomowner) AS owner, obj_description(oid, 'pg_largeobject') AS comment
       FROM pg_largeobject_metadata ORDER BY oid`,
  );
  await dst.query(`SELECT lo_unlink(oid) FROM pg_largeobject_metadata`);
  let bytes = 0;
  for (const lo of los.rows) {
    await src.query('BEGIN');
    await dst.query('BEGIN');
    try {
      await dst.query(`SELECT lo_create($1::oid)`, [lo.oid]);
      for (let off = 0; ; off += chunk) {
        const part = (await src.query<{ b: Buffer }>(`SELECT lo_get($1::oid, $2, $3) AS b`, [lo.oid, off, chunk])).rows[0]!.b;
        if (part.length === 0) break;
        await dst.query(`SELECT lo_put($1::oid, $2, $3)`, [lo.oid, off, part]);
        bytes += part.length;
        if (part.length < chunk) break;
      }
      const owner = await dst.query(`SELECT 1 FROM pg_roles WHERE rolname = $1`, [lo.owner]);
      if (owner.rowCount === 1) await dst.query(`ALTER LARGE OBJECT ${Number(lo.oid)} OWNER TO ${ident(lo.owner)}`);
      if (lo.comment !== null) await dst.query(`COMMENT ON LARGE OBJECT ${Number(lo.oid)} IS ${literal(lo.comment)}`);
      await dst.query('COMMIT');
      await src.query('COMMIT');
    } catch (e) {
      await dst.query('ROLLBACK').catch(() => undefined);
      await src.query('ROLLBACK').catch(() => undefined);
      throw e;
    }
  }
  return { count: los.rows.length, bytes };
}

/**
 * Refresh on the target every materialized view that is populated on the
 * source (a schema-only restore creates them empty). One may read another:
 * those that fail for an unpopulated dependency are retried after the rest.
 */
export async function refreshMatviews(src: pg.Client, dst: pg.Client): Promise<number> {
  const mv = await src.query<{ q: string }>(
    `SELECT quote_ident(schemaname) || '.' || quote_ident(matviewname) AS q FROM pg_matviews WHERE ispopulated ORDER BY 1`,
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
