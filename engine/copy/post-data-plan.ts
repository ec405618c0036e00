/**
 * What the post-data pipeline works from, read and planned before it starts:
 * the schema dump's post-data entries (`pg_restore -l`), the source's indexes,
 * foreign keys and partitioned tables, each index's build cost and memory, and
 * the split of post-data into per-table tasks, early foreign keys and the rest.
 */

import type pg from 'pg';
import { ident } from '../conn';

import { restoreSessionOptions } from './schema';

export interface TocEntry {
  readonly line: string;
  readonly type: string;
  readonly schema: string;
  readonly tag: string;
}

/** Entry types of the post-data section that belong to one table. */
const PER_TABLE = new Set(['INDEX', 'CONSTRAINT']);
/** Entry types whose tag parseToc splits; any other entry keeps its line, with an empty type. */
const TYPES = [
  'INDEX',
  'CONSTRAINT',
  'FK CONSTRAINT',
  'CHECK CONSTRAINT',
  'TRIGGER',
  'RULE',
  'POLICY',
  'ROW SECURITY',
  'INDEX ATTACH',
  'EVENT TRIGGER',
  'MATERIALIZED VIEW DATA',
  'STATISTICS',
  'DEFAULT ACL',
  'PUBLICATION',
  'PUBLICATION TABLE',
  'PUBLICATION TABLES IN SCHEMA',
  'SUBSCRIPTION',
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

/**
 * Parse `pg_restore -l` output: `123; 1259 16420 INDEX app orders_user_idx owner`.
 * Every entry is kept: one of a type this module does not know has type ''. Pure.
 */
export function parseToc(text: string): TocEntry[] {
  const out: TocEntry[] = [];
  for (const line of text.split('\n')) {
    const m = /^\d+; \d+ \d+ (.*)$/.exec(line);
    if (!m) continue;
    const rest = m[1]!;
    const type = TYPES.find((t) => rest.startsWith(t + ' '));
    if (!type) {
      out.push({ line, type: '', schema: '', tag: '' });
      continue;
    }
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

/** A foreign key on the source, between two plain tables, as the pipeline adds it. */
export interface ForeignKeyInfo {
  /** "schema.table" (unquoted) of the referencing and the referenced table. */
  readonly table: string;
  readonly refTable: string;
  /** "schema.index" (unquoted) of the referenced table's unique index the key uses. */
  readonly index: string;
  readonly constraint: string;
  /** Quoted name of the referencing table. */
  readonly qualifiedTable: string;
  /** `ALTER TABLE ONLY … ADD CONSTRAINT … FOREIGN KEY …` (pg_get_constraintdef, every name qualified), as pg_dump writes it. */
  readonly sql: string;
}

/** The key splitPostData matches a `FK CONSTRAINT` entry by: its schema and its tag ("table constraint"). Pure. */
export function foreignKeyTocKey(schema: string, table: string, constraint: string): string {
  return `${schema}\u0000${table} ${constraint}`;
}

export interface PostDataSplit {
  readonly perTable: Map<string, PostDataTask[]>;
  /** Foreign keys added as soon as both their tables are in with their indexes. */
  readonly foreignKeys: readonly (ForeignKeyInfo & { readonly line: string })[];
  readonly rest: string[];
  /** Partitioned tables, analyzed once all their leaf partitions are in (autovacuum never analyzes them). */
  readonly partitioned?: readonly PartitionedTable[];
}

export interface PartitionedTable {
  /** Quoted, schema-qualified name. */
  readonly quoted: string;
  /** Its leaf partitions at every level, "schema.table" (unquoted). */
  readonly leaves: readonly string[];
}

/** Partitioned tables on the source with their leaf partitions (PostgreSQL 10+; none before). */
export async function sourcePartitionedTables(source: pg.Client): Promise<PartitionedTable[]> {
  const r = await source.query<{ quoted: string; leaves: string[] | null }>(
    `WITH RECURSIVE tree(root, rel) AS (
       SELECT c.oid, c.oid FROM pg_class c WHERE c.relkind = 'p'
       UNION ALL
       SELECT t.root, i.inhrelid FROM tree t JOIN pg_inherits i ON i.inhparent = t.rel)
     SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS quoted,
            array_agg(ln.nspname || '.' || l.relname) FILTER (WHERE l.relkind = 'r') AS leaves
       FROM tree t JOIN pg_class c ON c.oid = t.root JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_class l ON l.oid = t.rel JOIN pg_namespace ln ON ln.oid = l.relnamespace
      GROUP BY 1`,
  );
  return r.rows.map((x) => ({ quoted: x.quoted, leaves: x.leaves ?? [] }));
}

/**
 * Split the entries of the post-data section (`pg_restore -l --section=post-data`)
 * into per-table lists, early foreign keys and the rest. `indexes` maps
 * "schema.index" to its table "schema.table" (from the source catalog);
 * `foreignKeys` is keyed by foreignKeyTocKey. Each table's entries come most
 * expensive first. A foreign key goes early only when both tables are copied
 * and the unique index it needs is built with its table; every entry not
 * taken is in the rest, whatever its type. Pure.
 */
export function splitPostData(
  entries: readonly TocEntry[],
  indexes: ReadonlyMap<string, IndexInfo>,
  tables: ReadonlySet<string>,
  foreignKeys: ReadonlyMap<string, ForeignKeyInfo> = new Map(),
): PostDataSplit {
  const perTable = new Map<string, PostDataTask[]>();
  const rest: string[] = [];
  const fkEntries: TocEntry[] = [];
  /** Indexes built with their table ("schema.index"). */
  const builtEarly = new Set<string>();
  for (const e of entries) {
    // pgrelocate's own publication, in a dump taken again by a resumed sync, is the source's alone.
    if (e.type.startsWith('PUBLICATION') && /^pgrelocate_/.test(e.tag)) continue;
    if (e.type === 'FK CONSTRAINT') {
      // In the rest unless taken below: the rest keeps the section's order (a comment follows its constraint).
      fkEntries.push(e);
      rest.push(e.line);
      continue;
    }
    let table: string | undefined;
    let cost = 0;
    let key: KeyConstraintSql | undefined;
    let am: string | undefined;
    let createSql: string | undefined;
    let index: string | undefined;
    if (e.type === 'INDEX') {
      const ix = indexes.get(`${e.schema}.${e.tag}`);
      table = ix?.table;
      cost = ix?.cost ?? 0;
      am = ix?.am;
      createSql = ix?.createSql;
      index = `${e.schema}.${e.tag}`;
    } else if (e.type === 'CONSTRAINT') {
      const [tbl, con] = e.tag.split(' ');
      const t = `${e.schema}.${tbl}`;
      if (tables.has(t)) table = t;
      // A primary key or unique constraint builds the index of the same name.
      const ix = indexes.get(`${e.schema}.${con}`);
      cost = ix?.cost ?? 0;
      am = ix?.am;
      key = ix?.keyConstraint;
      index = `${e.schema}.${con}`;
    }
    if (table && PER_TABLE.has(e.type)) {
      if (index) builtEarly.add(index);
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
  const early: (ForeignKeyInfo & { readonly line: string })[] = [];
  for (const e of fkEntries) {
    // The tag is "table constraint", so this is foreignKeyTocKey(schema, table, constraint) without splitting names that hold spaces.
    const fk = foreignKeys.get(`${e.schema}\u0000${e.tag}`);
    if (fk && tables.has(fk.table) && tables.has(fk.refTable) && builtEarly.has(fk.index)) early.push({ ...fk, line: e.line });
  }
  const taken = new Set(early.map((f) => f.line));
  return { perTable, foreignKeys: early, rest: rest.filter((l) => !taken.has(l)) };
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
    marked: boolean;
  }>(
    `SELECT n.nspname || '.' || ic.relname AS i, n.nspname || '.' || tc.relname AS t, am.amname AS am,
            pg_relation_size(ic.oid)::text AS bytes, tc.relkind::text AS relkind, pg_get_indexdef(ic.oid) AS indexdef,
            quote_ident(n.nspname) || '.' || quote_ident(tc.relname) AS qt, ic.relname AS iname,
            con.conname, con.contype::text AS contype, con.condeferrable AS deferrable, con.condeferred AS deferred,
            (ic.relkind = 'i' AND tc.relkind = 'r' AND NOT x.indisclustered AND NOT x.indisreplident
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c2 WHERE c2.conindid = ic.oid AND c2.conrelid = tc.oid)
             AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = ic.oid AND a.attstattarget >= 0)) AS plain,
            (x.indisclustered OR x.indisreplident) AS marked
       FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid JOIN pg_class tc ON tc.oid = x.indrelid
       JOIN pg_namespace n ON n.oid = tc.relnamespace JOIN pg_am am ON am.oid = ic.relam
       LEFT JOIN pg_constraint con ON con.conindid = ic.oid AND con.conrelid = tc.oid AND con.contype IN ('p', 'u')`,
  );
  return new Map(
    r.rows.map((x) => {
      // A key whose index CLUSTER or REPLICA IDENTITY names is restored by pg_restore: its entry carries those statements.
      const key =
        x.conname !== null && x.contype !== null && x.relkind === 'r' && x.conname === x.iname && !x.marked
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
 * Foreign keys between two plain tables on the source, keyed by
 * foreignKeyTocKey. A key on a partitioned table, or one a partition
 * inherits, is left to the rest of post-data.
 */
export async function sourceForeignKeys(source: pg.Client): Promise<Map<string, ForeignKeyInfo>> {
  // Definitions with every name qualified, whatever the source's search_path.
  await source.query(`SELECT pg_catalog.set_config('search_path', 'pg_catalog', false)`);
  const r = await source.query<{ n: string; t: string; qt: string; ref: string; idx: string; conname: string; def: string }>(
    `SELECT n.nspname AS n, c.relname AS t, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qt,
            rn.nspname || '.' || rc.relname AS ref, xn.nspname || '.' || xc.relname AS idx,
            con.conname, pg_get_constraintdef(con.oid) AS def
       FROM pg_constraint con
       JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_class rc ON rc.oid = con.confrelid JOIN pg_namespace rn ON rn.oid = rc.relnamespace
       JOIN pg_class xc ON xc.oid = con.conindid JOIN pg_namespace xn ON xn.oid = xc.relnamespace
      WHERE con.contype = 'f' AND c.relkind = 'r' AND rc.relkind = 'r'`,
  );
  return new Map(
    r.rows.map((x) => [
      foreignKeyTocKey(x.n, x.t, x.conname),
      {
        table: `${x.n}.${x.t}`,
        refTable: x.ref,
        index: x.idx,
        constraint: x.conname,
        qualifiedTable: x.qt,
        sql: `ALTER TABLE ONLY ${x.qt} ADD CONSTRAINT ${ident(x.conname)} ${x.def}`,
      },
    ]),
  );
}
