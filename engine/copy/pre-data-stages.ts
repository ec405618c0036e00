/**
 * Schema pre-data over several sessions. `pg_restore` runs pre-data in one
 * session, one statement and one round trip at a time, even with `-j`: on a
 * schema of thousands of tables that serial run of `CREATE TABLE`s is the
 * longest step of a copy, and with the target a millisecond away it is
 * several seconds more. Tables that depend on no other relation (see
 * `preDataDeps`) can be created in any order once everything before them in
 * the archive's order exists, so a run of such tables is split over `--jobs`
 * `pg_restore -L` processes; everything else keeps the archive's order in
 * one session.
 */
import type pg from 'pg';

/** The fewest independent tables in a row worth a parallel stage: below it, one session loses less than starting more. */
export const MIN_PARALLEL_RUN = 50;

/** One stage of the restore: a list for one pg_restore, or lists for several at once. */
export type PreDataStage =
  { readonly kind: 'serial'; readonly lines: string[] } | { readonly kind: 'parallel'; readonly lists: string[][] };

/** A `pg_restore -l` line of a table's CREATE: its source oid. Pure. */
export function tableEntryOid(line: string): number | null {
  const m = /^\d+; 1259 (\d+) TABLE /.exec(line);
  return m ? Number(m[1]) : null;
}

/** A sequence's entry: its source oid. Pure. */
function sequenceEntryOid(line: string): number | null {
  const m = /^\d+; 1259 (\d+) SEQUENCE /.exec(line);
  return m ? Number(m[1]) : null;
}

/**
 * An entry that belongs to the object entry just before it: pg_dump writes a
 * table's (or sequence's) comments, grants and security labels, and a serial
 * sequence's OWNED BY, right after it. Pure.
 */
function followsItsObject(line: string): boolean {
  return /^\d+; 0 0 ((COMMENT|ACL|SECURITY LABEL) \S+ (TABLE|COLUMN|SEQUENCE) |SEQUENCE OWNED BY )/.test(line);
}

/** What the stages are planned from, read on the source (`preDataDeps`). */
export interface PreDataDeps {
  /** Tables (oids) that depend on no other relation. */
  readonly tables: ReadonlySet<number>;
  /** Sequences (oids) owned by a table (serial or identity): they go with it. */
  readonly ownedSequences: ReadonlyMap<number, number>;
}

/**
 * The restore list in stages, in the archive's order: runs of at least
 * `minRun` independent tables (each with its comments and grants) split
 * round-robin over `jobs` lists; the rest serial. A sequence a table owns
 * goes with its table when that table is in the run, and into the run on its
 * own when its table was made by an earlier stage (pg_dump sorts `t1_id_seq`
 * after `t199`). Pure.
 */
export function preDataStages(lines: readonly string[], deps: PreDataDeps, jobs: number, minRun = MIN_PARALLEL_RUN): PreDataStage[] {
  const entries = lines.filter((l) => l.trim() && !l.startsWith(';'));
  const stages: PreDataStage[] = [];
  const serial = (ls: readonly string[]): void => {
    const last = stages[stages.length - 1];
    if (last?.kind === 'serial') last.lines.push(...ls);
    else if (ls.length > 0) stages.push({ kind: 'serial', lines: [...ls] });
  };
  // Tables an earlier stage makes; the run's groups (a table with what follows it, or a sequence of an
  // earlier table), the run's own tables, and the group the last entry joined.
  const earlier = new Set<number>();
  let run: string[][] = [];
  let groupOf = new Map<number, string[]>();
  let last: string[] | null = null;
  const endRun = (): void => {
    if (groupOf.size >= minRun && jobs > 1) {
      const lists: string[][] = Array.from({ length: Math.min(jobs, run.length) }, () => []);
      run.forEach((group, i) => lists[i % lists.length]!.push(...group));
      stages.push({ kind: 'parallel', lists });
    } else serial(run.flat());
    for (const t of groupOf.keys()) earlier.add(t);
    run = [];
    groupOf = new Map();
    last = null;
  };
  for (const line of entries) {
    const table = tableEntryOid(line);
    const owner = deps.ownedSequences.get(sequenceEntryOid(line) ?? -1);
    const ownersGroup = owner !== undefined ? groupOf.get(owner) : undefined;
    if (table !== null && deps.tables.has(table)) {
      last = [line];
      run.push(last);
      groupOf.set(table, last);
    } else if (ownersGroup) {
      ownersGroup.push(line);
      last = ownersGroup;
    } else if (run.length > 0 && owner !== undefined && earlier.has(owner)) {
      last = [line];
      run.push(last);
    } else if (last && followsItsObject(line)) last.push(line);
    else {
      endRun();
      serial([line]);
      if (table !== null) earlier.add(table);
    }
  }
  endRun();
  return stages;
}

/**
 * Tables (oids) that depend on no other relation, and the sequences tables
 * own. A table of the first kind is not a partition or an inheritance
 * child, is not typed by and holds no column of another relation's row type
 * (or an array or domain of it), and no default of it uses a sequence
 * another table owns. Read on the source the archive was dumped from, so
 * the oids are the archive's.
 */
export async function preDataDeps(c: pg.Client): Promise<PreDataDeps> {
  // A serial's sequence is owned by its table (auto), an identity's is part of it (internal).
  const owned = await c.query<{ seq: number; tab: number }>(
    `SELECT d.objid::int AS seq, d.refobjid::int AS tab FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
      WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0`,
  );
  // What CREATE TABLE writes: the table, its column defaults and its CHECK constraints. Each may depend on
  // another relation (a parent, a sequence another table owns) or on a relation's row type.
  const r = await c.query<{ oid: number }>(
    `WITH owned AS (SELECT * FROM unnest($1::oid[], $2::oid[]) AS o(seq, tab)),
          parts AS (SELECT c.oid AS tab, 'pg_class'::regclass AS classid, c.oid AS objid FROM pg_class c WHERE c.relkind IN ('r', 'p')
                    UNION ALL SELECT a.adrelid, 'pg_attrdef'::regclass, a.oid FROM pg_attrdef a
                    UNION ALL SELECT k.conrelid, 'pg_constraint'::regclass, k.oid FROM pg_constraint k WHERE k.contype = 'c' AND k.conrelid <> 0)
     SELECT c.oid::int AS oid FROM pg_class c
      WHERE c.relkind IN ('r', 'p') AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
        AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)
        AND NOT EXISTS (
          SELECT 1 FROM parts p JOIN pg_depend d ON d.classid = p.classid AND d.objid = p.objid
           WHERE p.tab = c.oid
             AND ((d.refclassid = 'pg_class'::regclass AND d.refobjid <> c.oid
                   AND NOT EXISTS (SELECT 1 FROM owned o WHERE o.seq = d.refobjid AND o.tab = c.oid))
                  OR (d.refclassid = 'pg_type'::regclass AND EXISTS (
                        -- A row type of a relation other than a standalone composite type (those come first),
                        -- directly, as an array's element or as a domain's base; a domain of a domain, or
                        -- an array of a domain, is taken as dependent without looking further.
                        SELECT 1 FROM pg_type t
                          LEFT JOIN pg_type e ON e.oid = t.typelem
                          LEFT JOIN pg_type b ON b.oid = t.typbasetype
                         WHERE t.oid = d.refobjid
                           AND (b.typtype = 'd' OR e.typtype = 'd'
                                OR EXISTS (SELECT 1 FROM pg_class r WHERE r.oid IN (t.typrelid, e.typrelid, b.typrelid) AND r.relkind <> 'c'))))))`,
    [owned.rows.map((o) => o.seq), owned.rows.map((o) => o.tab)],
  );
  return { tables: new Set(r.rows.map((x) => x.oid)), ownedSequences: new Map(owned.rows.map((x) => [x.seq, x.tab])) };
}
