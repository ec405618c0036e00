/**
 * `inspect`: read what a migration needs to know about one server and one
 * database — version, settings, privileges, databases, tables with sizes,
 * keys and replica identity, sequences, materialized views, large objects,
 * extensions and roles. Read-only.
 */
import { filterSql, type TableFilter } from './filter';
import type pg from 'pg';
import { literal, QueryBatch, withClient, type ConnInfo } from './conn';

/** The types with a default btree or hash operator class: the ones logical replication can compare for equality. */
const EQ_TYPES = `SELECT oc.opcintype FROM pg_opclass oc JOIN pg_am am ON am.oid = oc.opcmethod WHERE am.amname IN ('btree', 'hash') AND oc.opcdefault`;

export interface TableInfo {
  readonly schema: string;
  readonly name: string;
  /** r = table, p = partitioned parent (holds no rows itself). */
  readonly kind: 'r' | 'p';
  readonly unlogged: boolean;
  readonly partitionOf: string | null;
  readonly rowEstimate: number;
  /** The table's and its TOAST table's files (pg_table_size). */
  readonly bytes: number;
  /** `bytes` and its indexes' pages as pg_class last recorded them (CREATE INDEX, VACUUM, ANALYZE). */
  readonly totalBytes: number;
  /** Primary key columns, empty when the table has none. */
  readonly primaryKey: readonly string[];
  /** d = default (PK), n = nothing, f = full, i = index. */
  readonly replicaIdentity: 'd' | 'n' | 'f' | 'i';
  /** A unique, non-partial, non-deferrable index on NOT NULL columns exists (usable as replica identity). */
  readonly hasUsableUniqueIndex: boolean;
  readonly readable: boolean;
  /**
   * Row-level security would filter what this user reads (RLS enabled, and
   * the user neither superuser nor BYPASSRLS nor the owner of an un-FORCEd
   * table): a copy would silently miss rows, so pgrelocate refuses it.
   */
  readonly rlsFiltered: boolean;
  /** The table's owner, and whether the current user acts as it (the owner, a member with its privileges, or a superuser). */
  readonly owner: string;
  readonly owned: boolean;
  /**
   * Columns whose type has no default btree or hash equality (point, box,
   * json, xml, arrays of them…): REPLICA IDENTITY FULL cannot match rows by
   * them, and the subscriber's apply stops at the first UPDATE or DELETE.
   */
  readonly columnsWithoutEquality: readonly string[];
}

export interface SequenceInfo {
  readonly schema: string;
  readonly name: string;
  readonly ownedBy: string | null;
  /** The current user may read its value (the cutover copies it inside the write fence). */
  readonly readable: boolean;
}

export interface RoleInfo {
  readonly name: string;
  readonly superuser: boolean;
  readonly login: boolean;
  readonly replication: boolean;
}

export interface DatabaseInfo {
  readonly name: string;
  readonly bytes: number | null;
  readonly owner: string;
}

export interface ServerInfo {
  readonly versionNum: number;
  readonly major: number;
  readonly version: string;
  readonly inRecovery: boolean;
  readonly settings: Readonly<Record<string, string>>;
  readonly currentUser: string;
  readonly isSuperuser: boolean;
  readonly canCreateRole: boolean;
  readonly canCreateDb: boolean;
  readonly canReplicate: boolean;
  /** Managed-service admin roles the current user belongs to (rds_superuser, azure_pg_admin, …). */
  readonly managedAdminOf: readonly string[];
  readonly databases: readonly DatabaseInfo[];
  readonly roles: readonly RoleInfo[];
  /** Replication slots and WAL senders in use. */
  readonly slotsUsed: number;
  readonly walSendersUsed: number;
  /** May run CREATE SUBSCRIPTION (superuser, or pg_create_subscription on 16+). */
  readonly canCreateSubscription: boolean;
  /** Built with lz4 (default_toast_compression accepts it; 14+). */
  readonly hasLz4: boolean;
}

export interface DatabaseInventory {
  readonly name: string;
  readonly bytes: number;
  readonly canCreate: boolean;
  readonly tables: readonly TableInfo[];
  readonly sequences: readonly SequenceInfo[];
  readonly matviews: readonly { schema: string; name: string; populated: boolean }[];
  readonly views: number;
  readonly functions: number;
  readonly largeObjects: number;
  /** Tables with generated columns ("schema.table", quoted); none before 12. */
  readonly generatedColumnTables: readonly string[];
  readonly extensions: readonly { name: string; version: string; schema: string }[];
  readonly availableExtensions: readonly string[];
  /**
   * The database's publications (10+), pgrelocate's own left out. `wide` = FOR
   * ALL TABLES or FOR TABLES IN SCHEMA: creating one needs a superuser.
   */
  readonly publications: readonly { readonly name: string; readonly wide: boolean }[];
  /** Subscriptions of this database (10+; their names are readable without superuser), pgrelocate's own left out. */
  readonly subscriptions: readonly string[];
  /**
   * Login roles with their own default_transaction_read_only (for this
   * database or all), which would override the cutover's fence, and whether
   * the current user may change it (superuser; CREATEROLE on a non-superuser
   * role, with ADMIN on it from 16 on).
   */
  readonly fenceRoles: readonly { readonly name: string; readonly alterable: boolean }[];
  /** Schemas other than system ones, public and pgrelocate's own, that hold anything. */
  readonly userObjectCount: number;
  /** Functions in C outside any extension: their library must exist, built for the target's major, and creating them needs a superuser. */
  readonly cFunctions: readonly CFunction[];
  /** Columns of tables and materialized views set to lz4 compression (quoted identifiers; 14+). */
  readonly lz4Columns: readonly { readonly table: string; readonly column: string; readonly matview: boolean }[];
  /** Generated columns of inheritance children whose parent's column is not generated, which 16+ refuses ("child.column", quoted). */
  readonly generatedOverPlainColumns: readonly string[];
}

export interface CFunction {
  /** regprocedure text, e.g. public.widget_in(cstring). */
  readonly signature: string;
  readonly library: string;
  readonly symbol: string;
}

export interface Inventory {
  readonly server: ServerInfo;
  readonly database: DatabaseInventory;
}

/** Schemas pgrelocate never migrates or counts. */
/** Schemas never migrated: the catalogs, pgrelocate's state, and Bucardo's own (delta tables, triggers' functions) while a bucardo run has it. */
export const SYSTEM_SCHEMA_FILTER = `n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgrelocate', 'bucardo') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'`;

/** Objects that belong to an extension are created by CREATE EXTENSION, not copied. */
const NOT_EXTENSION_MEMBER = (classId: string, oidCol: string): string =>
  `NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '${classId}'::regclass AND d.objid = ${oidCol} AND d.deptype = 'e')`;

const SETTINGS = [
  'wal_level',
  'max_replication_slots',
  'max_wal_senders',
  'max_logical_replication_workers',
  'max_worker_processes',
  'server_encoding',
  'lc_collate',
  'shared_preload_libraries',
  'output_plugin_libraries',
  'rds.logical_replication',
  // This session's value: the database's and the role's settings applied (a cutover's write fence sets both).
  'default_transaction_read_only',
];

async function rows<T extends pg.QueryResultRow>(c: pg.Client, sql: string, params: unknown[] = []): Promise<T[]> {
  return (await c.query<T>(sql, params)).rows;
}

export async function inspectServer(c: pg.Client): Promise<ServerInfo> {
  const v = (
    await rows<{ num: string; version: string; rec: boolean; usr: string }>(
      c,
      `SELECT current_setting('server_version_num') AS num, version() AS version, pg_is_in_recovery() AS rec, current_user AS usr`,
    )
  )[0]!;
  const versionNum = Number(v.num);
  const b = new QueryBatch();
  const settingRows = b.add<{ name: string; setting: string }>(
    `SELECT name, setting FROM pg_settings WHERE name IN (${SETTINGS.map(literal).join(', ')})`,
  );
  // lc_collate left pg_settings in 16; read it from the database.
  const collate = b.add<{ c: string }>(`SELECT datcollate AS c FROM pg_database WHERE datname = current_database()`);
  const meRows = b.add<{ rolsuper: boolean; rolcreaterole: boolean; rolcreatedb: boolean; rolreplication: boolean }>(
    `SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication FROM pg_roles WHERE rolname = current_user`,
  );
  const managedRows = b.add<{ rolname: string }>(
    `SELECT rolname FROM pg_roles WHERE rolname IN ('rds_superuser', 'azure_pg_admin', 'cloudsqlsuperuser', 'rds_replication')
       AND pg_has_role(current_user, oid, 'MEMBER')`,
  );
  const databaseRows = b.add<{ name: string; bytes: string | null; owner: string }>(
    `SELECT datname AS name, pg_get_userbyid(datdba) AS owner,
            CASE WHEN has_database_privilege(datname, 'CONNECT') THEN pg_database_size(datname)::text END AS bytes
       FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY datname`,
  );
  const roleRows = b.add<{ rolname: string; rolsuper: boolean; rolcanlogin: boolean; rolreplication: boolean }>(
    `SELECT rolname, rolsuper, rolcanlogin, rolreplication FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY rolname`,
  );
  const replRows = b.add<{ slots: number; senders: number; sub: boolean }>(
    `SELECT (SELECT count(*)::int FROM pg_replication_slots) AS slots,
            (SELECT count(*)::int FROM pg_stat_replication) AS senders,
            ${versionNum >= 160000 ? `pg_has_role(current_user, 'pg_create_subscription', 'MEMBER')` : 'false'} AS sub`,
  );
  const lz4Rows =
    versionNum >= 140000
      ? b.add<{ l: boolean }>(`SELECT 'lz4' = ANY(enumvals) AS l FROM pg_settings WHERE name = 'default_toast_compression'`)
      : Promise.resolve([]);
  await b.run(c);
  const settings: Record<string, string> = {};
  for (const r of await settingRows) settings[r.name] = r.setting;
  if (!settings['lc_collate']) settings['lc_collate'] = (await collate)[0]?.c ?? '';
  const me = (await meRows)[0]!;
  const managed = await managedRows;
  const databases = await databaseRows;
  const roles = await roleRows;
  const repl = (await replRows)[0]!;
  const lz4 = (await lz4Rows)[0]?.l === true;
  return {
    hasLz4: lz4,
    slotsUsed: repl.slots,
    walSendersUsed: repl.senders,
    canCreateSubscription: me.rolsuper || repl.sub,
    versionNum,
    major: versionNum >= 100000 ? Math.floor(versionNum / 10000) : Math.floor(versionNum / 100) / 10,
    version: v.version,
    inRecovery: v.rec,
    settings,
    currentUser: v.usr,
    isSuperuser: me.rolsuper,
    canCreateRole: me.rolsuper || me.rolcreaterole,
    canCreateDb: me.rolsuper || me.rolcreatedb,
    canReplicate: me.rolsuper || me.rolreplication || managed.some((m) => m.rolname === 'rds_replication' || m.rolname === 'rds_superuser'),
    managedAdminOf: managed.map((m) => m.rolname),
    databases: databases.map((d) => ({ name: d.name, owner: d.owner, bytes: d.bytes === null ? null : Number(d.bytes) })),
    roles: roles.map((r) => ({ name: r.rolname, superuser: r.rolsuper, login: r.rolcanlogin, replication: r.rolreplication })),
  };
}

/** `filter`: only the relations it keeps are listed (tables, sequences, materialized views). */
export async function inspectDatabase(c: pg.Client, versionNum: number, filter?: TableFilter): Promise<DatabaseInventory> {
  const partitionOf =
    versionNum >= 100000
      ? `(SELECT i.inhparent::regclass::text FROM pg_inherits i WHERE i.inhrelid = c.oid AND c.relispartition)`
      : 'NULL::text';
  const rlsFiltered =
    versionNum >= 90500
      ? `(c.relrowsecurity AND NOT (SELECT r.rolsuper OR r.rolbypassrls FROM pg_roles r WHERE r.rolname = current_user)
          AND (c.relforcerowsecurity OR NOT pg_has_role(c.relowner, 'USAGE')))`
      : 'false';
  const b = new QueryBatch();
  const tablesQ = b.add<{
    schema: string;
    name: string;
    kind: 'r' | 'p';
    persistence: string;
    partition_of: string | null;
    reltuples: string;
    bytes: string;
    total_bytes: string;
    pk: string[] | null;
    replident: 'd' | 'n' | 'f' | 'i';
    usable_unique: boolean;
    readable: boolean;
    rls_filtered: boolean;
    owner: string;
    owned: boolean;
    no_eq: string[] | null;
  }>(
    `SELECT n.nspname AS schema, c.relname AS name, c.relkind AS kind, c.relpersistence AS persistence,
            ${partitionOf} AS partition_of,
            greatest(c.reltuples, 0)::bigint::text AS reltuples,
            sz.bytes::text AS bytes,
            -- Its indexes as pg_class last recorded them (CREATE INDEX, VACUUM, ANALYZE): pg_indexes_size opens every index,
            -- 0.1 s at 2,621 tables, for a figure only plan shows.
            (sz.bytes + (SELECT coalesce(sum(ic.relpages), 0) FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid
                          WHERE x.indrelid = c.oid) * current_setting('block_size')::bigint)::text AS total_bytes,
            (SELECT array_agg(a.attname::text ORDER BY k.ord)
               FROM pg_index x
               CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
              WHERE x.indrelid = c.oid AND x.indisprimary) AS pk,
            c.relreplident AS replident,
            EXISTS (SELECT 1 FROM pg_index x
                     WHERE x.indrelid = c.oid AND x.indisunique AND x.indimmediate AND x.indpred IS NULL
                       AND x.indexprs IS NULL
                       AND NOT EXISTS (SELECT 1 FROM unnest(x.indkey) k(attnum)
                                         JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
                                        WHERE NOT a.attnotnull)) AS usable_unique,
            has_table_privilege(c.oid, 'SELECT') AS readable,
            ${rlsFiltered} AS rls_filtered,
            pg_get_userbyid(c.relowner) AS owner, pg_has_role(c.relowner, 'USAGE') AS owned,
            (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
               JOIN pg_type ty ON ty.oid = a.atttypid
               -- a domain compares as its base type, an array as its elements
               JOIN pg_type bt ON bt.oid = CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE ty.oid END
               JOIN pg_type et ON et.oid = CASE WHEN bt.typcategory = 'A' AND bt.typelem <> 0 THEN bt.typelem ELSE bt.oid END
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                -- Uncorrelated subqueries, each run once as a hashed set: per column they cost thousands of
                -- catalog scans on a database of thousands of tables (411 ms of a preflight at 2,621 tables).
                AND NOT (et.oid IN (${EQ_TYPES}) OR et.typbasetype IN (${EQ_TYPES})
                         OR (et.typtype = 'e' AND 'anyenum'::regtype IN (${EQ_TYPES}))
                         OR (et.typtype = 'r' AND 'anyrange'::regtype IN (${EQ_TYPES}))
                         OR (et.typtype = 'c' AND 'record'::regtype IN (${EQ_TYPES}))
                         OR (et.typcategory = 'A' AND 'anyarray'::regtype IN (${EQ_TYPES}))
                         -- binary-coercible, as the apply worker's type cache finds them (varchar → text, cidr → inet)
                         OR et.oid IN (SELECT pc.castsource FROM pg_cast pc WHERE pc.castmethod = 'b' AND pc.casttarget IN (${EQ_TYPES})))) AS no_eq
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            -- Each size once per table: a size function stats every fork of the relation (and of its TOAST table),
            -- and computed in the list and again in ORDER BY it took 0.29 s of a preflight at 2,621 tables (now 0.1 s).
            CROSS JOIN LATERAL (SELECT pg_table_size(c.oid) AS bytes) sz
      WHERE c.relkind IN ('r', 'p') AND ${SYSTEM_SCHEMA_FILTER} AND ${NOT_EXTENSION_MEMBER('pg_class', 'c.oid')} AND ${filterSql(filter)}
      ORDER BY sz.bytes DESC, n.nspname, c.relname`,
  );
  const sequencesQ = b.add<{ schema: string; name: string; owned_by: string | null; readable: boolean }>(
    `SELECT n.nspname AS schema, c.relname AS name, has_sequence_privilege(c.oid, 'SELECT') AS readable,
            (SELECT d.refobjid::regclass::text || '.' || a.attname FROM pg_depend d
               JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
              WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i') LIMIT 1) AS owned_by
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'S' AND ${SYSTEM_SCHEMA_FILTER} AND ${NOT_EXTENSION_MEMBER('pg_class', 'c.oid')} AND ${filterSql(filter)}
      ORDER BY 1, 2`,
  );
  const matviewsQ = b.add<{ schema: string; name: string; populated: boolean }>(
    `SELECT n.nspname AS schema, c.relname AS name, c.relispopulated AS populated FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'm' AND ${filterSql(filter)} ORDER BY 1, 2`,
  );
  const countsQ = b.add<{ views: number; functions: number; los: number; objects: number; bytes: string; can_create: boolean }>(
    `SELECT (SELECT count(*)::int FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'v' AND ${SYSTEM_SCHEMA_FILTER}) AS views,
            (SELECT count(*)::int FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE ${SYSTEM_SCHEMA_FILTER} AND ${NOT_EXTENSION_MEMBER('pg_proc', 'p.oid')}) AS functions,
            (SELECT count(*)::int FROM pg_largeobject_metadata) AS los,
            (SELECT count(*)::int FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              -- Indexes and TOAST tables go with their table: an extension's (pglogical's, installed by the
              -- service) are no member of it themselves, and do not make a database "not empty".
              WHERE c.relkind NOT IN ('i', 'I', 't') AND ${SYSTEM_SCHEMA_FILTER} AND ${NOT_EXTENSION_MEMBER('pg_class', 'c.oid')}) +
            (SELECT count(*)::int FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
              WHERE ${SYSTEM_SCHEMA_FILTER} AND t.typtype IN ('e', 'd', 'c') AND t.typrelid = 0
                AND ${NOT_EXTENSION_MEMBER('pg_type', 't.oid')}) +
            (SELECT count(*)::int FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE ${SYSTEM_SCHEMA_FILTER} AND ${NOT_EXTENSION_MEMBER('pg_proc', 'p.oid')}) +
            (SELECT count(*)::int FROM pg_largeobject_metadata) AS objects,
            pg_database_size(current_database())::text AS bytes,
            has_database_privilege(current_database(), 'CREATE') AS can_create`,
  );
  const extensionsQ = b.add<{ name: string; version: string; schema: string }>(
    `SELECT e.extname AS name, e.extversion AS version, n.nspname AS schema
       FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY 1`,
  );
  const availableQ = b.add<{ name: string }>(`SELECT name FROM pg_available_extensions ORDER BY 1`);
  const generatedQ =
    versionNum >= 120000
      ? b.add<{ t: string }>(
          `SELECT DISTINCT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS t
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE a.attgenerated <> '' AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND ${SYSTEM_SCHEMA_FILTER} ORDER BY 1`,
        )
      : Promise.resolve([]);
  const publicationsQ =
    versionNum >= 100000
      ? b.add<{ name: string; wide: boolean }>(
          `SELECT p.pubname AS name, (p.puballtables ${
            versionNum >= 150000 ? 'OR EXISTS (SELECT 1 FROM pg_publication_namespace pn WHERE pn.pnpubid = p.oid)' : ''
          }) AS wide
             FROM pg_publication p WHERE p.pubname NOT LIKE 'pgrelocate\\_%' ORDER BY 1`,
        )
      : Promise.resolve([]);
  // The reads that may fail, each on its own after the batch.
  const subscriptionsSql =
    versionNum >= 100000
      ? `SELECT s.subname AS name FROM pg_subscription s
            WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND s.subname NOT LIKE 'pgrelocate\\_%' ORDER BY 1`
      : null;
  const fenceRolesSql = `SELECT DISTINCT r.rolname AS name,
            (me.rolsuper OR (me.rolcreaterole AND NOT r.rolsuper
              ${versionNum >= 160000 ? "AND pg_has_role(r.oid, 'MEMBER WITH ADMIN OPTION')" : ''})) AS alterable
       FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
       CROSS JOIN (SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user) me
      WHERE s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database())) AND r.rolcanlogin
        AND r.rolname <> current_user AND r.rolname !~ '^pg_'
        AND EXISTS (SELECT 1 FROM unnest(s.setconfig) e WHERE e LIKE 'default_transaction_read_only=%')
      ORDER BY 1`;
  const dbQ = b.add<{ d: string }>('SELECT current_database() AS d');
  const cFunctionsQ = b.add<CFunction>(
    `SELECT quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS signature, p.probin AS library, p.prosrc AS symbol
       FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE l.lanname = 'c' AND ${SYSTEM_SCHEMA_FILTER} AND ${NOT_EXTENSION_MEMBER('pg_proc', 'p.oid')}
      ORDER BY 1`,
  );
  const lz4ColumnsQ =
    versionNum >= 140000
      ? b.add<{ table: string; column: string; matview: boolean }>(
          `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS table, quote_ident(a.attname) AS column, c.relkind = 'm' AS matview
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE a.attcompression = 'l' AND c.relkind IN ('r', 'p', 'm') AND a.attnum > 0 AND NOT a.attisdropped AND ${SYSTEM_SCHEMA_FILTER}
              AND ${NOT_EXTENSION_MEMBER('pg_class', 'c.oid')} ORDER BY 1, 2`,
        )
      : Promise.resolve([]);
  // 16 requires a child's column to be generated exactly when its parent's is.
  const generatedOverPlainQ =
    versionNum >= 120000
      ? b.add<{ col: string }>(
          `SELECT DISTINCT quote_ident(n.nspname) || '.' || quote_ident(c.relname) || '.' || quote_ident(a.attname) AS col
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_inherits i ON i.inhrelid = c.oid
             JOIN pg_attribute pa ON pa.attrelid = i.inhparent AND pa.attname = a.attname AND NOT pa.attisdropped
            WHERE a.attgenerated <> '' AND pa.attgenerated = '' AND NOT a.attisdropped AND ${SYSTEM_SCHEMA_FILTER} ORDER BY 1`,
        )
      : Promise.resolve([]);
  await b.run(c);
  const subscriptions = subscriptionsSql ? await rows<{ name: string }>(c, subscriptionsSql).catch(() => []) : [];
  const fenceRoles = await rows<{ name: string; alterable: boolean }>(c, fenceRolesSql).catch(() => []);
  const [
    tables,
    sequences,
    matviews,
    counts,
    extensions,
    available,
    generated,
    publications,
    db,
    cFunctions,
    lz4Columns,
    generatedOverPlain,
  ] = await Promise.all([
    tablesQ,
    sequencesQ,
    matviewsQ,
    countsQ.then((r) => r[0]!),
    extensionsQ,
    availableQ,
    generatedQ,
    publicationsQ,
    dbQ.then((r) => r[0]!.d),
    cFunctionsQ,
    lz4ColumnsQ,
    generatedOverPlainQ,
  ]);
  return {
    cFunctions,
    lz4Columns,
    generatedOverPlainColumns: generatedOverPlain.map((x) => x.col),
    fenceRoles,
    name: db,
    bytes: Number(counts.bytes),
    canCreate: counts.can_create,
    tables: tables.map((t) => ({
      schema: t.schema,
      name: t.name,
      kind: t.kind,
      unlogged: t.persistence === 'u',
      partitionOf: t.partition_of,
      rowEstimate: Number(t.reltuples),
      bytes: Number(t.bytes),
      totalBytes: Number(t.total_bytes),
      primaryKey: t.pk ?? [],
      replicaIdentity: t.replident,
      hasUsableUniqueIndex: t.usable_unique,
      readable: t.readable,
      rlsFiltered: t.rls_filtered,
      owner: t.owner,
      owned: t.owned,
      columnsWithoutEquality: t.no_eq ?? [],
    })),
    sequences: sequences.map((s) => ({ schema: s.schema, name: s.name, ownedBy: s.owned_by, readable: s.readable })),
    matviews,
    views: counts.views,
    functions: counts.functions,
    largeObjects: counts.los,
    generatedColumnTables: generated.map((g) => g.t),
    extensions,
    availableExtensions: available.map((a) => a.name),
    publications,
    subscriptions: subscriptions.map((x) => x.name),
    userObjectCount: counts.objects,
  };
}

/** Inspect one endpoint: its server and the database the URL names. */
export async function inspect(conn: ConnInfo, label: string, filter?: TableFilter): Promise<Inventory> {
  return withClient(conn, label, async (c) => {
    const server = await inspectServer(c);
    const database = await inspectDatabase(c, server.versionNum, filter);
    return { server, database };
  });
}

/** `schema.table`, quoted for SQL. */
export function qualified(t: { schema: string; name: string }): string {
  return `"${t.schema.replace(/"/g, '""')}"."${t.name.replace(/"/g, '""')}"`;
}
