/**
 * Include and exclude filters on schemas and tables: which relations a run
 * migrates. One rule, applied everywhere from the same value — the schema
 * dump (pg_dump -N/-T with the names resolved here), the copy, the
 * publication or replication sets, the Bucardo sync, the fence, verification
 * and the schema-change check — so the parts can never disagree.
 *
 * Patterns are pg_dump's: `*` any characters, `?` one, a dot between schema
 * and name, letters folded to lower case unless double-quoted. Other
 * characters match themselves (pg_dump would read `[a-z]` as a regular
 * expression; here it is literal, so a name is never read as one by accident).
 * A table pattern without a schema matches that name in every schema.
 * Pure, except `readFilterFile`.
 */
import { readFileSync } from 'node:fs';
import type pg from 'pg';
import { literal } from './conn';
import { PgrelocateError } from './errors';
import { opt } from './option-names';

export interface TableFilter {
  readonly includeSchema: readonly string[];
  readonly excludeSchema: readonly string[];
  readonly includeTable: readonly string[];
  readonly excludeTable: readonly string[];
}

export const NO_FILTER: TableFilter = { includeSchema: [], excludeSchema: [], includeTable: [], excludeTable: [] };

export function isFiltered(f: TableFilter | undefined | null): f is TableFilter {
  return !!f && f.includeSchema.length + f.excludeSchema.length + f.includeTable.length + f.excludeTable.length > 0;
}

/** A pattern as regular expressions, anchored, valid both for JavaScript and for PostgreSQL's `~`. */
export interface CompiledPattern {
  /** null: any schema. */
  readonly schema: string | null;
  readonly name: string;
}

// `*` and `?` too: inside double quotes they match themselves.
const SPECIAL = /[\\^$.|+()[\]{}*?]/;

/** One part of a pattern (between unquoted dots) as a regular expression. */
function partRegex(part: string): string {
  let out = '';
  let quoted = false;
  for (let i = 0; i < part.length; i++) {
    const ch = part[i]!;
    if (ch === '"') {
      if (quoted && part[i + 1] === '"') {
        out += '"';
        i++;
      } else quoted = !quoted;
    } else if (!quoted && ch === '*') out += '.*';
    else if (!quoted && ch === '?') out += '.';
    else {
      const c = quoted ? ch : ch.toLowerCase();
      out += SPECIAL.test(c) ? `\\${c}` : c;
    }
  }
  return `^(${out})$`;
}

/** Split at dots outside double quotes. */
function splitDots(p: string): string[] {
  const parts: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of p) {
    if (ch === '"') quoted = !quoted;
    if (ch === '.' && !quoted) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  return parts;
}

/** A schema pattern (`app`, `tenant_*`, `"Billing"`) or a table pattern (`orders`, `app.audit_*`). Throws on a malformed one. */
export function compilePattern(pattern: string, kind: 'schema' | 'table'): CompiledPattern {
  const p = pattern.trim();
  const parts = splitDots(p);
  const bad = (why: string): PgrelocateError =>
    new PgrelocateError(
      'usage',
      `The ${kind} pattern ${JSON.stringify(pattern)} ${why}; nothing was changed.`,
      kind === 'schema'
        ? 'Write a schema name or pattern: app, tenant_*, "MixedCase".'
        : 'Write a table name or pattern, optionally schema-qualified: orders, app.audit_*, "Sales"."Q1".',
    );
  if (p === '' || parts.some((x) => x === '')) throw bad('is empty or has an empty part');
  if ((p.match(/"/g)?.length ?? 0) % 2 !== 0) throw bad('has an unclosed double quote');
  if (kind === 'schema' && parts.length !== 1) throw bad('has a dot: a schema pattern names schemas only');
  if (parts.length > 2) throw bad('has more than schema.table (a database name is not part of a pattern)');
  return parts.length === 2 ? { schema: partRegex(parts[0]!), name: partRegex(parts[1]!) } : { schema: null, name: partRegex(parts[0]!) };
}

interface Compiled {
  readonly includeSchema: readonly CompiledPattern[];
  readonly excludeSchema: readonly CompiledPattern[];
  readonly includeTable: readonly CompiledPattern[];
  readonly excludeTable: readonly CompiledPattern[];
}

function compile(f: TableFilter): Compiled {
  return {
    includeSchema: f.includeSchema.map((p) => compilePattern(p, 'schema')),
    excludeSchema: f.excludeSchema.map((p) => compilePattern(p, 'schema')),
    includeTable: f.includeTable.map((p) => compilePattern(p, 'table')),
    excludeTable: f.excludeTable.map((p) => compilePattern(p, 'table')),
  };
}

/** Check every pattern; the error names the one that is malformed. */
export function checkFilter(f: TableFilter): TableFilter {
  compile(f);
  return f;
}

const test = (re: string, s: string): boolean => new RegExp(re).test(s);
const tableMatch = (p: CompiledPattern, schema: string, name: string): boolean =>
  (p.schema === null || test(p.schema, schema)) && test(p.name, name);

/** Whether the filter keeps a schema's objects at all (its tables may still be left out by a table pattern). */
export function schemaIncluded(f: TableFilter | undefined, schema: string): boolean {
  if (!isFiltered(f)) return true;
  const c = compile(f);
  return (
    (c.includeSchema.length === 0 || c.includeSchema.some((p) => test(p.name, schema))) &&
    !c.excludeSchema.some((p) => test(p.name, schema))
  );
}

/** Whether a relation is named by the include patterns (all of it, when there are none). */
function included(c: Compiled, schema: string, name: string): boolean {
  return (
    (c.includeSchema.length === 0 || c.includeSchema.some((p) => test(p.name, schema))) &&
    (c.includeTable.length === 0 || c.includeTable.some((p) => tableMatch(p, schema, name)))
  );
}

/** Whether a relation is named by an exclude pattern. */
function excluded(c: Compiled, schema: string, name: string): boolean {
  return c.excludeSchema.some((p) => test(p.name, schema)) || c.excludeTable.some((p) => tableMatch(p, schema, name));
}

/** Whether the filter keeps a relation (table, view, sequence, materialized view) by its own name. */
export function relationIncluded(f: TableFilter | undefined, schema: string, name: string): boolean {
  if (!isFiltered(f)) return true;
  const c = compile(f);
  return included(c, schema, name) && !excluded(c, schema, name);
}

/**
 * The same rule as a SQL condition on a relation of the source: `c` and `n`
 * are the query's aliases of pg_class and pg_namespace. What catalog queries
 * add so they see only the relations the run migrates; `true` without a
 * filter. As in `planFilter`, a sequence owned by a column follows its table
 * and a partition its parent (unless excluded by its own name).
 */
export function filterSql(f: TableFilter | undefined, c = 'c', n = 'n'): string {
  if (!isFiltered(f)) return 'true';
  const k = compile(f);
  const any = (ps: readonly CompiledPattern[], one: (p: CompiledPattern) => string): string => ps.map(one).join(' OR ') || 'false';
  const inc = (schema: string, name: string): string => {
    const onTable = (p: CompiledPattern): string =>
      p.schema === null ? `${name} ~ ${literal(p.name)}` : `(${schema} ~ ${literal(p.schema)} AND ${name} ~ ${literal(p.name)})`;
    return (
      [
        ...(k.includeSchema.length ? [`(${any(k.includeSchema, (p) => `${schema} ~ ${literal(p.name)}`)})`] : []),
        ...(k.includeTable.length ? [`(${any(k.includeTable, onTable)})`] : []),
      ].join(' AND ') || 'true'
    );
  };
  const exc = (schema: string, name: string): string => {
    const onTable = (p: CompiledPattern): string =>
      p.schema === null ? `${name} ~ ${literal(p.name)}` : `(${schema} ~ ${literal(p.schema)} AND ${name} ~ ${literal(p.name)})`;
    return `(${any(k.excludeSchema, (p) => `${schema} ~ ${literal(p.name)}`)} OR ${any(k.excludeTable, onTable)})`;
  };
  // The owning table of a sequence owned by a column (serial: 'a', identity: 'i').
  const owner = `(SELECT d.refobjid FROM pg_catalog.pg_depend d WHERE ${c}.relkind = 'S' AND d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND d.objid = ${c}.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype IN ('a', 'i') LIMIT 1)`;
  return `(EXISTS (WITH RECURSIVE up(oid) AS (
      SELECT coalesce(${owner}, ${c}.oid)
      UNION ALL
      SELECT i.inhparent FROM up JOIN pg_catalog.pg_inherits i ON i.inhrelid = up.oid
        JOIN pg_catalog.pg_class pp ON pp.oid = i.inhparent WHERE pp.relkind = 'p')
    SELECT 1 FROM up JOIN pg_catalog.pg_class fc ON fc.oid = up.oid JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace
     WHERE ${inc('fn.nspname', 'fc.relname')} AND NOT ${exc('fn.nspname', 'fc.relname')})
    AND (${owner} IS NOT NULL OR NOT ${exc(`${n}.nspname`, `${c}.relname`)}))`;
}

/** One line for reports and logs: what the filter keeps and leaves out. */
export function describeFilter(f: TableFilter | undefined): string {
  if (!isFiltered(f)) return 'everything';
  const part = (label: string, ps: readonly string[]): string[] => (ps.length ? [`${label} ${ps.join(', ')}`] : []);
  return [
    ...part('schemas', f.includeSchema),
    ...part('not schemas', f.excludeSchema),
    ...part('tables', f.includeTable),
    ...part('not tables', f.excludeTable),
  ].join('; ');
}

/** Two filters merged: every pattern of both (the command line's with a file's). */
export function mergeFilters(a: TableFilter, b: TableFilter): TableFilter {
  return {
    includeSchema: [...a.includeSchema, ...b.includeSchema],
    excludeSchema: [...a.excludeSchema, ...b.excludeSchema],
    includeTable: [...a.includeTable, ...b.includeTable],
    excludeTable: [...a.excludeTable, ...b.excludeTable],
  };
}

/** Whether two filters keep the same relations for certain: the same patterns. */
export function sameFilter(a: TableFilter | undefined, b: TableFilter | undefined): boolean {
  const key = (f: TableFilter | undefined): string =>
    isFiltered(f) ? JSON.stringify([f.includeSchema, f.excludeSchema, f.includeTable, f.excludeTable].map((x) => [...x].sort())) : '';
  return key(a) === key(b);
}

const KINDS: Record<string, keyof TableFilter> = {
  'include-schema': 'includeSchema',
  'exclude-schema': 'excludeSchema',
  'include-table': 'includeTable',
  'exclude-table': 'excludeTable',
  // pgcopydb's filter file sections, so a file written for it can be given as is.
  'include-only-schema': 'includeSchema',
  'include-only-table': 'includeTable',
};

/**
 * A filter file: one `<kind> <pattern>` per line (kind: include-schema,
 * exclude-schema, include-table, exclude-table), or pgcopydb's sections
 * (`[exclude-schema]` followed by one name per line). `#` and `;` start
 * comments. Throws naming the line that is neither.
 */
export function parseFilterFile(text: string, file = 'the filter file'): TableFilter {
  const out: Record<keyof TableFilter, string[]> = { includeSchema: [], excludeSchema: [], includeTable: [], excludeTable: [] };
  let section: keyof TableFilter | null = null;
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.replace(/^\s*[#;].*$/, '').trim();
    if (!line) return;
    const bad = (why: string): PgrelocateError =>
      new PgrelocateError(
        'usage',
        `${file}, line ${i + 1} (${JSON.stringify(raw.trim())}): ${why}; nothing was changed.`,
        `Write one "<kind> <pattern>" per line, kind one of ${Object.keys(KINDS).slice(0, 4).join(', ')}; or pgcopydb's [section] headers with one name per line.`,
      );
    const header = /^\[([a-z-]+)\]$/.exec(line);
    if (header) {
      section = KINDS[header[1]!] ?? null;
      if (!section) throw bad(`section [${header[1]}] is not one pgrelocate filters by`);
      return;
    }
    const m = /^([a-z-]+)\s+(.+)$/.exec(line);
    const kind = m ? KINDS[m[1]!] : undefined;
    if (kind) out[kind].push(m![2]!.trim());
    else if (section) out[section].push(line);
    else throw bad('not "<kind> <pattern>" and not under a [section]');
  });
  return checkFilter(out);
}

export function readFilterFile(file: string): TableFilter {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new PgrelocateError(
      'usage',
      `Cannot read the filter file ${file}: ${(e as Error).message}.`,
      'Pass --filter-file with a readable file.',
    );
  }
  return parseFilterFile(text, file);
}

/** A relation of the source as the filter plan sees it. */
export interface FilterRelation {
  readonly oid: number;
  readonly schema: string;
  readonly name: string;
  /** pg_class.relkind: r, p, v, m, f, S. */
  readonly kind: string;
  /** A sequence owned by a column: its table's oid (it follows its table). */
  readonly ownedBy: number | null;
  /** A partition: its parent's oid (an included partitioned table brings its partitions, unless one is excluded by name). */
  readonly parent: number | null;
}

/** One relation depending on another: a foreign key, a view's query, a partition or inheritance child, a column default. */
export interface FilterEdge {
  readonly from: number;
  readonly to: number;
  readonly kind: 'foreign key' | 'view' | 'partition' | 'default';
}

/** A dependency the filter cuts: an error when the target could not be built, a warning when it loses nothing it keeps. */
export interface FilterCrossing {
  readonly level: 'error' | 'warning';
  readonly kind: FilterEdge['kind'];
  /** Quoted, schema-qualified. */
  readonly from: string;
  readonly to: string;
}

/** A kept relation using a type or function of another schema (a column's type, a default, a check, a trigger, a view). */
export interface FilterUse {
  readonly from: number;
  readonly schema: string;
  /** The type or function, qualified, for the message. */
  readonly object: string;
}

/** What a filter means on one source: pg_dump's exclusions and the dependencies it cuts. */
export interface FilterPlan {
  /**
   * Schemas left out whole (`pg_dump -N`), quoted. A schema holding an
   * extension, or a type or function a kept relation uses, keeps its other
   * objects: only its relations are left out.
   */
  readonly excludeSchemas: readonly string[];
  /** Schemas the filter leaves out whose types or functions kept relations use: made on the target without their relations. */
  readonly keptFor: readonly { readonly schema: string; readonly object: string; readonly by: string }[];
  /** Relations left out in the schemas kept (`pg_dump -T`), quoted and qualified. */
  readonly excludeRelations: readonly string[];
  readonly crossings: readonly FilterCrossing[];
  /** Patterns that match nothing on the source (a typo, most likely), as given. */
  readonly unmatched: readonly { readonly kind: keyof TableFilter; readonly pattern: string }[];
  /** How many relations the filter keeps and leaves out. */
  readonly kept: number;
  readonly left: number;
}

const q = (s: string): string => `"${s.replace(/"/g, '""')}"`;

/** The filter on one source's relations. Pure. */
export function planFilter(
  f: TableFilter,
  schemas: readonly { readonly name: string; readonly holdsExtension: boolean }[],
  relations: readonly FilterRelation[],
  edges: readonly FilterEdge[],
  uses: readonly FilterUse[] = [],
): FilterPlan {
  const c = compile(f);
  const byOid = new Map(relations.map((r) => [r.oid, r]));
  const kept = (r: FilterRelation): boolean => {
    const owner = r.ownedBy !== null ? byOid.get(r.ownedBy) : undefined;
    if (owner) return kept(owner);
    const parent = r.parent !== null ? byOid.get(r.parent) : undefined;
    return (included(c, r.schema, r.name) || (parent !== undefined && kept(parent))) && !excluded(c, r.schema, r.name);
  };
  const keep = new Map(relations.map((r) => [r.oid, kept(r)]));
  const name = (r: FilterRelation): string => `${q(r.schema)}.${q(r.name)}`;
  const left = new Set(schemas.filter((s) => !schemaIncluded(f, s.name)).map((s) => s.name));
  const keptFor = uses
    .filter((u) => left.has(u.schema) && keep.get(u.from) && byOid.has(u.from))
    .map((u) => ({ schema: q(u.schema), object: u.object, by: name(byOid.get(u.from)!) }));
  const needed = new Set(keptFor.map((k) => k.schema));
  const droppedSchemas = new Set(schemas.filter((s) => left.has(s.name) && !s.holdsExtension && !needed.has(q(s.name))).map((s) => s.name));
  const crossings: FilterCrossing[] = [];
  const seen = new Set<string>();
  for (const e of edges) {
    const from = byOid.get(e.from);
    const to = byOid.get(e.to);
    if (!from || !to || keep.get(e.from) === keep.get(e.to)) continue;
    // A kept object that needs a left-out one cannot be made on the target; a left-out partition or
    // referencing table loses only its own rows (worth a warning); a left-out view or default loses nothing kept.
    const fromKept = keep.get(e.from)!;
    if (!fromKept && e.kind !== 'partition' && e.kind !== 'foreign key') continue;
    const c: FilterCrossing = { level: fromKept ? 'error' : 'warning', kind: e.kind, from: name(from), to: name(to) };
    const key = JSON.stringify(c);
    if (!seen.has(key)) crossings.push(c);
    seen.add(key);
  }
  const unmatched: FilterPlan['unmatched'][number][] = [];
  for (const kind of ['includeSchema', 'excludeSchema'] as const)
    f[kind].forEach((pattern, i) => {
      if (!schemas.some((s) => test(c[kind][i]!.name, s.name))) unmatched.push({ kind, pattern });
    });
  for (const kind of ['includeTable', 'excludeTable'] as const)
    f[kind].forEach((pattern, i) => {
      if (!relations.some((r) => tableMatch(c[kind][i]!, r.schema, r.name))) unmatched.push({ kind, pattern });
    });
  const keptCount = [...keep.values()].filter(Boolean).length;
  return {
    unmatched,
    keptFor,
    kept: keptCount,
    left: relations.length - keptCount,
    excludeSchemas: [...droppedSchemas].sort().map(q),
    excludeRelations: relations
      .filter((r) => !keep.get(r.oid) && !droppedSchemas.has(r.schema))
      .map(name)
      .sort(),
    crossings,
  };
}

/** A crossing as a check finding's message and fix. Pure. */
export function crossingText(c: FilterCrossing): { message: string; fix: string } {
  const fix = `Include ${c.to} too (${opt('includeTable')}, or no include pattern that leaves it out), or leave ${c.from} out (${opt('excludeTable')}).`;
  switch (c.kind) {
    case 'foreign key':
      return c.level === 'error'
        ? {
            message: `The filter keeps ${c.from}, whose foreign key references ${c.to}, which it leaves out: the key cannot be made on the target.`,
            fix,
          }
        : {
            message: `The filter leaves out ${c.from}, whose foreign key references ${c.to}: the target will not have the referencing rows.`,
            fix: 'Nothing to do if that is intended.',
          };
    case 'partition':
      return c.level === 'error'
        ? {
            message: `The filter keeps ${c.from}, a partition or child of ${c.to}, which it leaves out: it cannot be made without its parent.`,
            fix,
          }
        : {
            message: `The filter leaves out ${c.from}, a partition or child of ${c.to}: its rows are not migrated, and rows the target routes to it will fail.`,
            fix: `Nothing to do if that is intended; otherwise include ${c.from}.`,
          };
    case 'view':
      return {
        message: `The filter keeps the view ${c.from}, which reads ${c.to}, which it leaves out: the view cannot be made on the target.`,
        fix,
      };
    case 'default':
      return { message: `The filter keeps ${c.from}, whose column default uses ${c.to}, which it leaves out.`, fix };
  }
}

/** The filter on the source's catalog: one query for the relations, one for what depends on what. */
export async function readFilterPlan(c: pg.Client, f: TableFilter): Promise<FilterPlan> {
  const system = `n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgrelocate', 'bucardo', 'pglogical') AND n.nspname NOT LIKE 'pg\\_%'`;
  const schemas = await c.query<{ name: string; ext: boolean }>(
    `SELECT n.nspname AS name, EXISTS (SELECT 1 FROM pg_extension e WHERE e.extnamespace = n.oid) AS ext
       FROM pg_namespace n WHERE ${system}
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')`,
  );
  const rels = await c.query<{ oid: number; schema: string; name: string; kind: string; owned_by: number | null; parent: number | null }>(
    `SELECT c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS kind,
            (SELECT d.refobjid::int8 FROM pg_depend d WHERE c.relkind = 'S' AND d.classid = 'pg_class'::regclass AND d.objid = c.oid
                AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') LIMIT 1) AS owned_by,
            (SELECT i.inhparent::int8 FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent WHERE i.inhrelid = c.oid AND p.relkind = 'p') AS parent
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND ${system}
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`,
  );
  const edges = await c.query<{ from: number; to: number; kind: FilterEdge['kind'] }>(
    `SELECT conrelid::int8 AS from, confrelid::int8 AS to, 'foreign key' AS kind FROM pg_constraint WHERE contype = 'f'
     UNION
     SELECT i.inhrelid::int8, i.inhparent::int8, 'partition' FROM pg_inherits i
     UNION
     SELECT r.ev_class::int8, d.refobjid::int8, 'view' FROM pg_rewrite r
       JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_class'::regclass
      WHERE d.refobjid <> r.ev_class
     UNION
     SELECT a.adrelid::int8, d.refobjid::int8, 'default' FROM pg_attrdef a
       JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = a.oid AND d.refclassid = 'pg_class'::regclass
      WHERE d.refobjid <> a.adrelid`,
  );
  // Types and functions of another schema that a relation uses: its columns' types, and what its defaults, checks, triggers or view call.
  const uses = await c.query<{ from: number; schema: string; object: string }>(
    `WITH owner AS (
       SELECT 'pg_class'::regclass AS classid, c.oid AS objid, c.oid AS rel FROM pg_class c
       UNION ALL SELECT 'pg_attrdef'::regclass, a.oid, a.adrelid FROM pg_attrdef a
       UNION ALL SELECT 'pg_constraint'::regclass, k.oid, k.conrelid FROM pg_constraint k WHERE k.conrelid <> 0
       UNION ALL SELECT 'pg_trigger'::regclass, t.oid, t.tgrelid FROM pg_trigger t
       UNION ALL SELECT 'pg_rewrite'::regclass, r.oid, r.ev_class FROM pg_rewrite r)
     SELECT DISTINCT o.rel::int8 AS from, n.nspname AS schema,
            CASE WHEN d.refclassid = 'pg_type'::regclass THEN format_type(d.refobjid, NULL) ELSE d.refobjid::regprocedure::text END AS object
       FROM pg_depend d JOIN owner o ON o.classid = d.classid AND o.objid = d.objid
       LEFT JOIN pg_type t ON d.refclassid = 'pg_type'::regclass AND t.oid = d.refobjid
       LEFT JOIN pg_proc p ON d.refclassid = 'pg_proc'::regclass AND p.oid = d.refobjid
       JOIN pg_namespace n ON n.oid = coalesce(t.typnamespace, p.pronamespace)
      WHERE d.refclassid IN ('pg_type'::regclass, 'pg_proc'::regclass) AND d.deptype = 'n' AND ${system}
        AND NOT (t.oid IS NOT NULL AND t.typrelid <> 0)`,
  );
  return planFilter(
    f,
    schemas.rows.map((s) => ({ name: s.name, holdsExtension: s.ext })),
    rels.rows.map((r) => ({
      oid: Number(r.oid),
      schema: r.schema,
      name: r.name,
      kind: r.kind,
      ownedBy: r.owned_by === null ? null : Number(r.owned_by),
      parent: r.parent === null ? null : Number(r.parent),
    })),
    edges.rows.map((e) => ({ from: Number(e.from), to: Number(e.to), kind: e.kind })),
    uses.rows.map((u) => ({ from: Number(u.from), schema: u.schema, object: u.object })),
  );
}

/** pg_dump's arguments that leave out what the plan leaves out (exact names, quoted: never read as patterns). */
export function dumpFilterArgs(p: FilterPlan | undefined): string[] {
  if (!p) return [];
  return [...p.excludeSchemas.map((s) => `--exclude-schema=${s}`), ...p.excludeRelations.map((r) => `--exclude-table=${r}`)];
}
