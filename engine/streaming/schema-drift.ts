/**
 * Schema changes on the source during a sync. Replication carries rows, not
 * DDL: a table created after the snapshot is simply not replicated, a column
 * added stops the apply, a new partition takes rows nothing copies. So a
 * streaming run records the source's tables, columns, indexes and constraints
 * when it starts (in the target's state), and `status`, `verify` and `cutover`
 * compare the source of now with it: a change the target does not have yet is
 * named, and the cutover refuses until the target has it.
 *
 * Comparing the source then with the source now (one server, one deparser)
 * rather than source with target keeps differences between majors' catalog
 * text out; the target is only asked whether it already has the changed
 * object (a fix applied, or a change the schema copy caught).
 */
import type pg from 'pg';
import { SYSTEM_SCHEMA_FILTER } from '../inspect';

export type ShapeKind = 'table' | 'column' | 'index' | 'constraint';

/** One object of the schema: a table (def: its kind), or a column, index or constraint of one (def: its definition). */
export interface ShapeRow {
  readonly kind: ShapeKind;
  /** The table, quoted and qualified. */
  readonly tbl: string;
  /** The column, index or constraint; '' for the table itself. */
  readonly name: string;
  readonly def: string;
}

export interface SchemaChange {
  readonly change: 'added' | 'dropped' | 'changed';
  readonly row: ShapeRow;
  /** The definition recorded at the start (changed only). */
  readonly before?: string;
  /** A new table, column, index or constraint: applied on the target, it streams on. */
  readonly additive: boolean;
}

/**
 * The shape of every migrated table of the database `c` is connected to: plain
 * and partitioned tables (partitions included, a new one being the commonest
 * change), their columns with type and NOT NULL, their indexes and constraints
 * as the server prints them. Extension members and pgrelocate's and Bucardo's
 * own schemas are left out.
 */
export async function readShape(c: pg.Client): Promise<ShapeRow[]> {
  const r = await c.query<ShapeRow>(
    `WITH t AS (
       SELECT c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS q, c.relkind, c.relpersistence
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND ${SYSTEM_SCHEMA_FILTER}
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'))
     SELECT 'table' AS kind, q AS tbl, '' AS name,
            CASE relkind WHEN 'p' THEN 'partitioned table' ELSE 'table' END || CASE relpersistence WHEN 'u' THEN ', unlogged' ELSE '' END AS def
       FROM t
     UNION ALL
     SELECT 'column', t.q, a.attname, format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
       FROM t JOIN pg_attribute a ON a.attrelid = t.oid WHERE a.attnum > 0 AND NOT a.attisdropped
     UNION ALL
     SELECT 'index', t.q, i.relname, pg_get_indexdef(x.indexrelid)
       FROM t JOIN pg_index x ON x.indrelid = t.oid JOIN pg_class i ON i.oid = x.indexrelid
     UNION ALL
     SELECT 'constraint', t.q, co.conname, pg_get_constraintdef(co.oid)
       FROM t JOIN pg_constraint co ON co.conrelid = t.oid`,
  );
  return r.rows;
}

const keyOf = (r: Pick<ShapeRow, 'kind' | 'tbl' | 'name'>): string => `${r.kind}\u0000${r.tbl}\u0000${r.name}`;

/**
 * The source's changes since `recorded` that the target does not have yet.
 * The target has an added object when one of that name is there (a column:
 * with the same type), a changed column when its type is the new one, a
 * dropped object when it is gone. A new or dropped table is named once, not
 * with each of its columns. Pure.
 */
export function schemaDrift(recorded: readonly ShapeRow[], sourceNow: readonly ShapeRow[], targetNow: readonly ShapeRow[]): SchemaChange[] {
  const then = new Map(recorded.map((r) => [keyOf(r), r]));
  const now = new Map(sourceNow.map((r) => [keyOf(r), r]));
  const there = new Map(targetNow.map((r) => [keyOf(r), r]));
  const onTarget = (r: ShapeRow): boolean => {
    const t = there.get(keyOf(r));
    return t !== undefined && (r.kind !== 'column' || t.def === r.def);
  };
  const out: SchemaChange[] = [];
  for (const [k, s] of now) {
    const r = then.get(k);
    if (!r) {
      if (!onTarget(s)) out.push({ change: 'added', row: s, additive: true });
    } else if (r.def !== s.def && there.get(k)?.def !== s.def) {
      out.push({ change: 'changed', row: s, before: r.def, additive: false });
    }
  }
  for (const [k, r] of then) if (!now.has(k) && there.has(k)) out.push({ change: 'dropped', row: r, additive: false });
  // A whole table added or dropped: its parts are part of it.
  const whole = new Set(out.filter((c) => c.row.kind === 'table' && c.change !== 'changed').map((c) => c.row.tbl));
  return out.filter((c) => c.row.kind === 'table' || !whole.has(c.row.tbl));
}

/** One change, as status, verify and cutover name it. Pure. */
export function describeChange(c: SchemaChange): string {
  const { kind, tbl, name, def } = c.row;
  if (kind === 'table')
    return c.change === 'added'
      ? `new ${def} ${tbl}: created on the source after the copy, not replicated`
      : c.change === 'dropped'
        ? `table ${tbl} dropped on the source`
        : `table ${tbl} is now a ${def} (was a ${c.before})`;
  if (c.change === 'added') return `${tbl}: new ${kind} ${name} ${kind === 'column' ? def : `(${def})`}`;
  if (c.change === 'dropped') return `${tbl}: ${kind} ${name} dropped on the source`;
  return `${tbl}: ${kind} ${name} changed: ${c.before} → ${def}`;
}

/** Record the source's shape for a run, once (a resumed run keeps the shape it started from). */
export async function recordShape(dst: pg.Client, runId: string, rows: readonly ShapeRow[]): Promise<void> {
  await dst.query(
    `INSERT INTO pgrelocate.source_schema (run_id, kind, tbl, name, def)
     SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) ON CONFLICT DO NOTHING`,
    [runId, rows.map((r) => r.kind), rows.map((r) => r.tbl), rows.map((r) => r.name), rows.map((r) => r.def)],
  );
}

/** The shape a run recorded when it started; null for a run that recorded none (one started by an earlier pgrelocate). */
export async function recordedShape(dst: pg.Client, runId: string): Promise<ShapeRow[] | null> {
  const r = await dst.query<ShapeRow>(`SELECT kind, tbl, name, def FROM pgrelocate.source_schema WHERE run_id = $1`, [runId]);
  return r.rows.length > 0 ? r.rows : null;
}

/** The source's changes since the run started that the target lacks; null when the run recorded no shape. */
export async function schemaChanges(src: pg.Client, dst: pg.Client, runId: string): Promise<SchemaChange[] | null> {
  const recorded = await recordedShape(dst, runId);
  if (!recorded) return null;
  const [sourceNow, targetNow] = await Promise.all([readShape(src), readShape(dst)]);
  return schemaDrift(recorded, sourceNow, targetNow);
}
