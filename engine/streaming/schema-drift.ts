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
import { filterSql, type TableFilter } from '../filter';
import { SYSTEM_SCHEMA_FILTER } from '../inspect';
import { libpqUrl, runTool, errorLines } from '../tool-exec';
import { selectClientTools } from '../tools';
import { serverVersionNum, type ConnInfo } from '../conn';

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
export async function readShape(c: pg.Client, filter?: TableFilter): Promise<ShapeRow[]> {
  // An empty search_path: every name in the definitions qualified, the same whoever reads them, and runnable on the target.
  await c.query(`BEGIN; SET LOCAL search_path = ''`);
  try {
    return await readShapeRows(c, filter);
  } finally {
    await c.query('COMMIT').catch(() => undefined);
  }
}

async function readShapeRows(c: pg.Client, filter: TableFilter | undefined): Promise<ShapeRow[]> {
  const r = await c.query<ShapeRow>(
    `WITH t AS (
       SELECT c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS q, c.relkind, c.relpersistence
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'S') AND ${SYSTEM_SCHEMA_FILTER} AND ${filterSql(filter)}
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('e', 'i')))
     SELECT 'table' AS kind, q AS tbl, '' AS name,
            CASE relkind WHEN 'p' THEN 'partitioned table' WHEN 'S' THEN 'sequence' ELSE 'table' END
              || CASE relpersistence WHEN 'u' THEN ', unlogged' ELSE '' END AS def
       FROM t
     UNION ALL
     SELECT 'column', t.q, a.attname, format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
       FROM t JOIN pg_attribute a ON a.attrelid = t.oid WHERE t.relkind <> 'S' AND a.attnum > 0 AND NOT a.attisdropped
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
      ? `new ${def} ${tbl}: created on the source after the copy, ${def === 'sequence' ? 'missing on the target' : 'not replicated'}`
      : c.change === 'dropped'
        ? `${def.replace(/^partitioned /, '').replace(/, unlogged$/, '')} ${tbl} dropped on the source`
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
export async function schemaChanges(
  src: pg.Client,
  dst: pg.Client,
  runId: string,
  filter: TableFilter | undefined,
): Promise<SchemaChange[] | null> {
  const recorded = await recordedShape(dst, runId);
  if (!recorded) return null;
  // The run's filter on both sides: a table it leaves out is no change, wherever it is made.
  const [sourceNow, targetNow] = await Promise.all([readShape(src, filter), readShape(dst, filter)]);
  return schemaDrift(recorded, sourceNow, targetNow);
}

/** A default that calls a function (now(), nextval(), random()…) would give the target's existing rows other values than the source's. */
const CALLS_A_FUNCTION = /[\w"]\s*\(/;

/** The target's ALTER TABLE … ADD COLUMN for a column the source gained, or why it cannot be made as the source's. */
async function addColumnSql(src: pg.Client, tbl: string, column: string): Promise<{ sql: string } | { why: string }> {
  const v = await serverVersionNum(src);
  const r = await src.query<{
    type: string;
    notnull: boolean;
    def: string | null;
    coll: string | null;
    identity: string;
    generated: string;
  }>(
    `SELECT format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS notnull, pg_get_expr(d.adbin, d.adrelid) AS def,
            CASE WHEN a.attcollation <> t.typcollation THEN
              (SELECT quote_ident(n.nspname) || '.' || quote_ident(co.collname) FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace
                WHERE co.oid = a.attcollation) END AS coll,
            ${v >= 100000 ? 'a.attidentity::text' : `''`} AS identity, ${v >= 120000 ? 'a.attgenerated::text' : `''`} AS generated
       FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE a.attrelid = $1::regclass AND a.attname = $2 AND NOT a.attisdropped`,
    [tbl, column],
  );
  const c = r.rows[0];
  if (!c) return { why: 'no longer on the source' };
  if (c.def && !c.generated && CALLS_A_FUNCTION.test(c.def))
    return { why: `its default ${c.def} gives each server's existing rows their own values: add it on the target and copy its values` };
  const parts = [`ALTER TABLE ${tbl} ADD COLUMN ${quoteIdent(column)} ${c.type}`];
  if (c.coll) parts.push(`COLLATE ${c.coll}`);
  if (c.generated === 's') parts.push(`GENERATED ALWAYS AS (${c.def}) STORED`);
  else if (c.identity) parts.push(`GENERATED ${c.identity === 'a' ? 'ALWAYS' : 'BY DEFAULT'} AS IDENTITY`);
  else if (c.def) parts.push(`DEFAULT ${c.def}`);
  if (c.notnull && !c.identity) parts.push('NOT NULL');
  return { sql: parts.join(' ') };
}

const quoteIdent = (s: string): string => `"${s.replace(/"/g, '""')}"`;

/**
 * `sync` on a streaming run: the additive changes the target lacks made on
 * it — new tables and sequences (where the strategy can bring a table into
 * replication: `tables`), new columns (with their type, collation, default or
 * identity), then constraints, then indexes, as the source prints them — so
 * the apply goes on and the cutover may go ahead. What cannot be made so (a
 * drop, a changed type, a column whose default calls a function, a key-less
 * table) is returned with why, for the user to make.
 */
export async function applyAdditive(
  src: pg.Client,
  dst: pg.Client,
  runId: string,
  tables: { readonly source: ConnInfo; readonly add: (tables: readonly string[]) => Promise<void> } | null,
  filter: TableFilter | undefined,
): Promise<{ applied: string[]; pending: string[] }> {
  const changes = (await schemaChanges(src, dst, runId, filter)) ?? [];
  const applied: string[] = [];
  const pending: string[] = [];
  const order: ShapeKind[] = ['column', 'constraint', 'index'];
  const additive = changes.filter((c) => c.change === 'added' && c.row.kind !== 'table');
  const added = changes.filter((c) => c.change === 'added' && c.row.kind === 'table');
  for (const c of changes) if (!additive.includes(c) && !(tables && added.includes(c))) pending.push(describeChange(c));
  for (const kind of order) {
    // Columns first (a missing one stalls the apply, which must run to copy a new table), then new tables (a
    // constraint may reference one), then constraints and indexes.
    if (kind === 'constraint' && tables && added.length > 0) {
      const made = await addNewTables(src, dst, tables.source, added, tables.add);
      applied.push(...made.applied);
      pending.push(...made.pending);
    }
    for (const c of additive.filter((x) => x.row.kind === kind)) {
      const { tbl, name, def } = c.row;
      const made =
        kind === 'column'
          ? await addColumnSql(src, tbl, name)
          : { sql: kind === 'index' ? def : `ALTER TABLE ${tbl} ADD CONSTRAINT ${quoteIdent(name)} ${def}` };
      if ('why' in made) {
        pending.push(`${describeChange(c)}: ${made.why}`);
        continue;
      }
      try {
        await dst.query(made.sql);
        applied.push(describeChange(c));
      } catch (e) {
        // A constraint's own index (primary key, unique) is there already: made with the constraint.
        if (kind === 'index' && (e as { code?: string }).code === '42P07') applied.push(describeChange(c));
        else pending.push(`${describeChange(c)}: the target refused it (${(e as Error).message})`);
      }
    }
  }
  return { applied, pending };
}

/**
 * New tables: each made on the target as pg_dump prints it from the source
 * (columns, constraints, indexes, a partition's attachment, owner, grants),
 * then given to replication (`add`), which copies their rows and streams
 * their changes. Unlogged tables (no WAL; the cutover copies them),
 * partitioned parents and sequences (the cutover sets them) are made but not
 * added; a table without a key replication could match is not made at all.
 */
async function addNewTables(
  src: pg.Client,
  dst: pg.Client,
  source: ConnInfo,
  added: readonly SchemaChange[],
  add: (tables: readonly string[]) => Promise<void>,
): Promise<{ applied: string[]; pending: string[] }> {
  const applied: string[] = [];
  const pending: string[] = [];
  const major = Math.floor((await serverVersionNum(src)) / 10000);
  const tools = await selectClientTools(major);
  const replicate: string[] = [];
  const facts = new Map<string, { unlogged: boolean; partitioned: boolean; key: boolean; sequence: boolean }>();
  for (const c of added)
    facts.set(
      c.row.tbl,
      (
        await src.query<{ unlogged: boolean; partitioned: boolean; key: boolean; sequence: boolean }>(
          `SELECT c.relpersistence = 'u' AS unlogged, c.relkind = 'p' AS partitioned, c.relkind = 'S' AS sequence,
                  c.relreplident = 'f' OR EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = c.oid AND (x.indisprimary OR x.indisreplident)) AS key
             FROM pg_class c WHERE c.oid = $1::regclass`,
          [c.row.tbl],
        )
      ).rows[0]!,
    );
  // A partitioned table before its partitions, whose definitions attach them to it.
  const ordered = [...added].sort((a, b) => Number(facts.get(b.row.tbl)!.partitioned) - Number(facts.get(a.row.tbl)!.partitioned));
  for (const c of ordered) {
    const t = c.row.tbl;
    const f = facts.get(t)!;
    // Made on the target only if its rows will follow: a table there counts as no longer missing.
    if (!f.unlogged && !f.partitioned && !f.sequence && !f.key) {
      pending.push(
        `${describeChange(c)}: it has no primary key or replica identity, so replication could not carry its changes (add one on the source, then sync again)`,
      );
      continue;
    }
    const dump = await runTool(
      tools.pgDump,
      ['--schema-only', '--no-publications', '--no-subscriptions', `--table=${t}`, '--dbname', libpqUrl(source)],
      [source],
      {
        captureStdout: true,
      },
    );
    if (dump.exitCode !== 0) {
      pending.push(`${describeChange(c)}: pg_dump of it failed (${errorLines(dump.stderr, 3)})`);
      continue;
    }
    // psql's own commands (\restrict in newer pg_dump) are not SQL.
    const ddl = dump.stdout
      .split('\n')
      .filter((l) => !l.startsWith('\\'))
      .join('\n');
    try {
      await dst.query(`BEGIN; ${ddl}; COMMIT`);
    } catch (e) {
      await dst.query('ROLLBACK').catch(() => undefined);
      pending.push(`${describeChange(c)}: the target refused its definition (${(e as Error).message})`);
      continue;
    } finally {
      // pg_dump's script sets search_path and more for its session: back to this session's own.
      await dst.query('RESET ALL');
    }
    if (f.sequence) applied.push(`${describeChange(c)}: made on the target (the cutover sets its value)`);
    else if (f.unlogged) applied.push(`${describeChange(c)}: made on the target (unlogged: the cutover copies its rows)`);
    else if (f.partitioned) applied.push(`${describeChange(c)}: made on the target (its partitions replicate)`);
    else replicate.push(t);
  }
  if (replicate.length > 0) {
    await add(replicate);
    for (const t of replicate) applied.push(`new table ${t}: made on the target and replicated, its rows copied`);
  }
  return { applied, pending };
}
