/**
 * A deep comparison of two databases, for judging a migration method: every
 * catalog object named by pg_identify_object with its definition, owner and
 * ACL, comments, the database's settings and grants, the roles the objects
 * refer to, sequences, large objects with their comments, and a checksum of
 * every table's rows. Differences that only reflect the newer server (how it
 * prints an expression, privileges it added) are normalised by named rules,
 * and what a plain pg_dump | pg_restore also loses can be subtracted
 * (`beyondBaseline`), so a method is judged against PostgreSQL's own tools.
 *
 * Reads only; meant for servers where the user may read every table (the
 * integration suite, a rehearsal), as it scans all rows.
 */
import pg from 'pg';
import { serverVersionNum, withClient, type ConnInfo } from './conn';
import { FENCE_TRIGGERS } from './streaming/fence';
import { STABLE_SESSION } from './verify';

/** One object: its kind and identity (pg_identify_object), and what is compared of it. */
export interface ObjectFacts {
  readonly type: string;
  readonly identity: string;
  /** owner, acl, definition, comment, rows, value: absent when it does not apply. */
  readonly aspects: Readonly<Record<string, string>>;
}

export interface Snapshot {
  readonly major: number;
  /** Keyed by `type identity`. */
  readonly objects: ReadonlyMap<string, ObjectFacts>;
}

export interface Difference {
  readonly key: string;
  readonly aspect: string;
  readonly source: string | null;
  readonly target: string | null;
}

export interface Comparison {
  readonly compared: number;
  /** Objects per type on the source, for the report. */
  readonly byType: Readonly<Record<string, number>>;
  readonly differences: readonly Difference[];
  /** Named normalisations and how many values each changed. */
  readonly normalised: Readonly<Record<string, number>>;
}

const FIRST_USER_OID = 16384;

/** Object rows: one SELECT per catalog, each giving classid, objid, owner, acl and a definition. */
function objectQuery(major: number): string {
  const attCompression =
    major >= 14 ? `|| CASE WHEN a.attcompression <> '' THEN ' COMPRESSION ' || a.attcompression::text ELSE '' END` : '';
  const acl = (expr: string, kind: string, owner: string): string =>
    `(SELECT string_agg(e, ' ' ORDER BY e) FROM (SELECT CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END || '=' || x.privilege_type ||
                        CASE WHEN x.is_grantable THEN '*' ELSE '' END || '/' || pg_get_userbyid(x.grantor) AS e
        FROM aclexplode(coalesce(${expr}, acldefault(${kind.length === 1 ? `'${kind}'` : kind}::"char", ${owner}))) x) s)`;
  const columns = `(SELECT string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod)
            || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
            || coalesce(CASE WHEN a.attgenerated <> '' THEN ' GENERATED ' ELSE ' DEFAULT ' END || pg_get_expr(d.adbin, d.adrelid), '')
            || CASE WHEN a.attidentity <> '' THEN ' IDENTITY ' || a.attidentity::text ELSE '' END
            || CASE WHEN a.attcollation <> 0 AND a.attcollation <> ty.typcollation THEN ' COLLATE ' || a.attcollation::regcollation::text ELSE '' END
            || CASE WHEN a.attstorage <> ty.typstorage THEN ' STORAGE ' || a.attstorage::text ELSE '' END
            ${attCompression}
            || CASE WHEN NOT a.attislocal THEN ' INHERITED' ELSE '' END
            || coalesce(' OPTIONS ' || array_to_string(a.attfdwoptions, ','), '')
            || coalesce(' ACL ' || ${acl('a.attacl', 'c', 'c.relowner')}, ''), ', ' ORDER BY a.attnum)
          FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid
          LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)`;
  // Column ACLs default to nothing: aclexplode(acldefault('c', …)) is empty, so only grants show.
  const relation = `
    SELECT 'pg_class'::regclass AS classid, c.oid AS objid, c.relowner AS owner,
           CASE WHEN c.relkind NOT IN ('i', 'I') THEN ${acl('c.relacl', `CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END`, 'c.relowner')} END AS acl,
           'kind ' || c.relkind::text || ' persistence ' || c.relpersistence::text
           || CASE WHEN c.relkind IN ('r', 'p', 'f', 'c') THEN ' columns (' || coalesce(${columns}, '') || ')' ELSE '' END
           || CASE WHEN c.relkind IN ('v', 'm') THEN ' AS ' || pg_get_viewdef(c.oid) || ' columns (' || coalesce(${columns}, '') || ')' ELSE '' END
           || CASE WHEN c.relkind = 'm' THEN ' populated ' || c.relispopulated ELSE '' END
           || CASE WHEN c.relkind IN ('i', 'I') THEN ' ' || pg_get_indexdef(c.oid)
                   || (SELECT CASE WHEN x.indisclustered THEN ' CLUSTERED' ELSE '' END || CASE WHEN x.indisreplident THEN ' REPLICA IDENTITY' ELSE '' END
                         FROM pg_index x WHERE x.indexrelid = c.oid) ELSE '' END
           || CASE WHEN c.relkind = 'S' THEN (SELECT ' ' || format_type(s.seqtypid, NULL) || ' start ' || s.seqstart || ' increment ' || s.seqincrement
                   || ' min ' || s.seqmin || ' max ' || s.seqmax || ' cache ' || s.seqcache || ' cycle ' || s.seqcycle FROM pg_sequence s WHERE s.seqrelid = c.oid)
                   || coalesce(' owned by ' || (SELECT d.refobjid::regclass::text || '.' || quote_ident(a.attname) FROM pg_depend d
                        JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                       WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i') LIMIT 1), '') ELSE '' END
           || coalesce(' WITH ' || array_to_string(c.reloptions, ','), '')
           || CASE WHEN c.relkind = 'p' THEN ' PARTITION BY ' || pg_get_partkeydef(c.oid) ELSE '' END
           || coalesce(' ' || pg_get_expr(c.relpartbound, c.oid), '')
           || coalesce(' INHERITS ' || (SELECT string_agg(i.inhparent::regclass::text, ',' ORDER BY i.inhseqno) FROM pg_inherits i
                                          WHERE i.inhrelid = c.oid AND NOT c.relispartition), '')
           || coalesce(' OF ' || format_type(nullif(c.reloftype, 0), NULL), '')
           || CASE WHEN c.relkind IN ('r', 'p') THEN ' replica identity ' || c.relreplident::text || ' rls ' || c.relrowsecurity || '/' || c.relforcerowsecurity ELSE '' END
           || coalesce((SELECT ' SERVER ' || s.srvname || coalesce(' OPTIONS ' || array_to_string(ft.ftoptions, ','), '')
                          FROM pg_foreign_table ft JOIN pg_foreign_server s ON s.oid = ft.ftserver WHERE ft.ftrelid = c.oid), '')
           AS definition
      FROM pg_class c WHERE c.relkind <> 't'`;
  const routine = `
    SELECT 'pg_proc'::regclass, p.oid, p.proowner, ${acl('p.proacl', 'f', 'p.proowner')},
           CASE WHEN p.prokind = 'a' THEN
             (SELECT 'aggregate (' || pg_get_function_arguments(p.oid) || ') kind ' || g.aggkind::text || ' sfunc ' || g.aggtransfn::regproc::text
                     || ' stype ' || format_type(g.aggtranstype, NULL) || ' final ' || g.aggfinalfn::regproc::text
                     || ' combine ' || g.aggcombinefn::regproc::text || ' serial ' || g.aggserialfn::regproc::text || '/' || g.aggdeserialfn::regproc::text
                     || ' moving ' || g.aggmtransfn::regproc::text || '/' || g.aggminvtransfn::regproc::text || '/' || g.aggmfinalfn::regproc::text
                     || ' sortop ' || g.aggsortop::regoperator::text || ' init ' || coalesce(g.agginitval, '-') || '/' || coalesce(g.aggminitval, '-')
                FROM pg_aggregate g WHERE g.aggfnoid = p.oid)
           ELSE pg_get_functiondef(p.oid) END
      FROM pg_proc p`;
  const type = `
    SELECT 'pg_type'::regclass, t.oid, t.typowner, ${acl('t.typacl', 'T', 't.typowner')},
           'type ' || t.typtype::text || ' len ' || t.typlen || ' align ' || t.typalign::text || ' storage ' || t.typstorage::text || ' category ' || t.typcategory::text
           || ' io ' || t.typinput::regproc::text || '/' || t.typoutput::regproc::text || '/' || t.typreceive::regproc::text || '/' || t.typsend::regproc::text
           || '/' || t.typmodin::regproc::text || '/' || t.typmodout::regproc::text || '/' || t.typanalyze::regproc::text
           || CASE WHEN t.typtype = 'd' THEN ' over ' || format_type(t.typbasetype, t.typtypmod) || ' notnull ' || t.typnotnull
                   || coalesce(' default ' || t.typdefault, '') || coalesce(' collate ' || nullif(t.typcollation, 0)::regcollation::text, '') ELSE '' END
           || CASE WHEN t.typtype = 'e' THEN ' labels ' || (SELECT string_agg(quote_literal(e.enumlabel), ',' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid) ELSE '' END
           || CASE WHEN t.typtype = 'r' THEN (SELECT ' range of ' || format_type(r.rngsubtype, NULL) || ' opclass ' || r.rngsubopc::text
                   || ' canonical ' || r.rngcanonical::regproc::text || ' diff ' || r.rngsubdiff::regproc::text FROM pg_range r WHERE r.rngtypid = t.oid) ELSE '' END
      FROM pg_type t
     WHERE t.typrelid = 0 AND t.typtype <> 'm'
       AND NOT EXISTS (SELECT 1 FROM pg_type e WHERE e.oid = t.typelem AND e.typarray = t.oid)`;
  const simple = (catalog: string, oid: string, owner: string, definition: string, where = 'true', aclExpr = 'NULL::text'): string =>
    `SELECT '${catalog}'::regclass, ${oid}, ${owner}, ${aclExpr}, ${definition} FROM ${catalog} WHERE ${where}`;
  return [
    relation,
    routine,
    type,
    simple('pg_namespace', 'oid', 'nspowner', 'NULL::text', 'true', acl('nspacl', 'n', 'nspowner')),
    simple(
      'pg_constraint',
      'oid',
      'NULL::oid',
      `contype::text || ' ' || pg_get_constraintdef(oid) || CASE WHEN condeferrable THEN ' deferrable ' || condeferred ELSE '' END || ' valid ' || convalidated`,
    ),
    // The cutover's fence triggers on the source are pgrelocate's, not the user's schema.
    simple(
      'pg_trigger',
      'oid',
      'NULL::oid',
      `pg_get_triggerdef(oid) || ' enabled ' || tgenabled::text`,
      `NOT tgisinternal AND tgname NOT IN (${FENCE_TRIGGERS.map((t) => `'${t}'`).join(', ')})`,
    ),
    simple('pg_rewrite', 'oid', 'NULL::oid', `pg_get_ruledef(oid) || ' enabled ' || ev_enabled::text`, `rulename <> '_RETURN'`),
    simple(
      'pg_operator',
      'oid',
      'oprowner',
      `oprcode::regproc::text || ' rest ' || oprrest::regproc::text || ' join ' || oprjoin::regproc::text || ' com ' || oprcom::regoperator::text
       || ' neg ' || oprnegate::regoperator::text || ' merges ' || oprcanmerge || ' hashes ' || oprcanhash`,
    ),
    simple(
      'pg_opclass',
      'oid',
      'opcowner',
      `'default ' || opcdefault || ' type ' || format_type(opcintype, NULL) || ' key ' || opckeytype::regtype::text`,
    ),
    simple('pg_opfamily', 'oid', 'opfowner', 'NULL::text'),
    simple(
      'pg_amop',
      'oid',
      'NULL::oid',
      `amopopr::regoperator::text || ' purpose ' || amoppurpose::text || ' sortfamily ' || amopsortfamily`,
    ),
    simple('pg_amproc', 'oid', 'NULL::oid', `amproc::regprocedure::text`),
    simple(
      'pg_cast',
      'oid',
      'NULL::oid',
      `castfunc::regprocedure::text || ' context ' || castcontext::text || ' method ' || castmethod::text`,
    ),
    simple('pg_conversion', 'oid', 'conowner', `conproc::regproc::text || ' default ' || condefault`),
    simple(
      'pg_collation',
      'oid',
      'collowner',
      `collprovider::text || ' ' || coalesce(collcollate, '') || '/' || coalesce(collctype, '') || ' deterministic ' || collisdeterministic`,
    ),
    simple(
      'pg_ts_config',
      'oid',
      'cfgowner',
      `cfgparser::regproc::text || ' ' || (SELECT string_agg(m.maptokentype || ':' || m.mapseqno || ':' || m.mapdict::regdictionary::text, ',' ORDER BY m.maptokentype, m.mapseqno) FROM pg_ts_config_map m WHERE m.mapcfg = pg_ts_config.oid)`,
    ),
    simple('pg_ts_dict', 'oid', 'dictowner', `dicttemplate::text || ' ' || coalesce(dictinitoption, '')`),
    simple('pg_ts_parser', 'oid', 'NULL::oid', `prsstart::regproc::text || '/' || prstoken::regproc::text || '/' || prsend::regproc::text`),
    simple('pg_ts_template', 'oid', 'NULL::oid', `tmplinit::regproc::text || '/' || tmpllexize::regproc::text`),
    simple(
      'pg_foreign_data_wrapper',
      'oid',
      'fdwowner',
      `fdwhandler::regproc::text || '/' || fdwvalidator::regproc::text || coalesce(' ' || array_to_string(fdwoptions, ','), '')`,
      'true',
      acl('fdwacl', 'F', 'fdwowner'),
    ),
    simple(
      'pg_foreign_server',
      'oid',
      'srvowner',
      `coalesce(srvtype, '') || '/' || coalesce(srvversion, '') || coalesce(' ' || array_to_string(srvoptions, ','), '')`,
      'true',
      acl('srvacl', 'S', 'srvowner'),
    ),
    simple('pg_user_mapping', 'oid', 'NULL::oid', `coalesce(array_to_string(umoptions, ','), '')`),
    simple(
      'pg_policy',
      'oid',
      'NULL::oid',
      `polcmd::text || ' permissive ' || polpermissive || ' to ' || (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(r) END, ',' ORDER BY CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(r) END) FROM unnest(polroles) r)
       || coalesce(' USING ' || pg_get_expr(polqual, polrelid), '') || coalesce(' CHECK ' || pg_get_expr(polwithcheck, polrelid), '')`,
    ),
    simple(
      'pg_publication',
      'oid',
      'pubowner',
      `'all ' || puballtables || ' ' || pubinsert || pubupdate || pubdelete || pubtruncate
       || ' tables ' || coalesce((SELECT string_agg(pr.prrelid::regclass::text, ',' ORDER BY pr.prrelid::regclass::text) FROM pg_publication_rel pr WHERE pr.prpubid = pg_publication.oid), '')`,
      `pubname NOT LIKE 'pgrelocate\\_%'`,
    ),
    simple(
      'pg_event_trigger',
      'oid',
      'evtowner',
      `evtevent || ' ' || evtfoid::regproc::text || ' ' || evtenabled::text || coalesce(' ' || array_to_string(evttags, ','), '')`,
    ),
    simple('pg_extension', 'oid', 'extowner', `extversion || ' in ' || extnamespace::regnamespace::text`),
    simple('pg_statistic_ext', 'oid', 'stxowner', 'pg_get_statisticsobjdef(oid)'),
    simple(
      'pg_language',
      'oid',
      'lanowner',
      `'trusted ' || lanpltrusted || ' ' || lanplcallfoid::regproc::text`,
      'true',
      acl('lanacl', 'l', 'lanowner'),
    ),
    simple('pg_transform', 'oid', 'NULL::oid', `trffromsql::regproc::text || '/' || trftosql::regproc::text`),
    simple('pg_am', 'oid', 'NULL::oid', `amtype::text || ' ' || amhandler::regproc::text`),
    simple(
      'pg_default_acl',
      'oid',
      'NULL::oid',
      `defaclobjtype::text || ' ' || (SELECT string_agg(x::text, ' ' ORDER BY x::text) FROM unnest(defaclacl) x)`,
    ),
  ].join('\n    UNION ALL\n');
}

/** Objects pgrelocate or Bucardo add, and the catalogs' own. */
const EXCLUDED_SCHEMAS = `('pg_catalog', 'information_schema', 'pgrelocate', 'bucardo')`;

/** Take one database's snapshot. */
export async function snapshot(conn: ConnInfo, label: string): Promise<Snapshot> {
  return withClient(conn, label, async (c) => {
    await c.query(STABLE_SESSION);
    await c.query('SET row_security = off');
    const major = Math.floor((await serverVersionNum(c)) / 10000);
    const objects = new Map<string, ObjectFacts>();
    const put = (type: string, rawIdentity: string, aspects: Record<string, string>): void => {
      // 17 names a transform "for T on language L", 15 "for T language L".
      const identity = type === 'transform' ? rawIdentity.replace(' on language ', ' language ') : rawIdentity;
      const key = `${type} ${identity}`;
      const had = objects.get(key);
      objects.set(key, { type, identity, aspects: { ...(had?.aspects ?? {}), ...aspects } });
    };
    const rows = await c.query<{
      type: string;
      identity: string;
      schema: string | null;
      owner: string | null;
      acl: string | null;
      definition: string | null;
    }>(
      `WITH o AS (${objectQuery(major)})
       SELECT i.type, i.identity, i.schema, pg_get_userbyid(o.owner) AS owner, o.acl, o.definition
         FROM o CROSS JOIN LATERAL pg_identify_object(o.classid, o.objid, 0) i
        WHERE (o.objid >= ${FIRST_USER_OID} OR (o.classid = 'pg_namespace'::regclass AND i.identity = 'public'))
          AND coalesce(i.schema, '') NOT IN ${EXCLUDED_SCHEMAS} AND coalesce(i.schema, '') NOT LIKE 'pg\\_toast%'
          AND coalesce(i.schema, '') NOT LIKE 'pg\\_temp%' AND i.identity NOT IN ${EXCLUDED_SCHEMAS}
          AND NOT (o.classid = 'pg_namespace'::regclass AND i.identity ~ '^pg_(toast_)?temp_')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = o.classid AND d.objid = o.objid AND d.deptype = 'e')`,
    );
    for (const r of rows.rows) {
      const aspects: Record<string, string> = {};
      if (r.owner && r.owner !== '-') aspects['owner'] = r.owner;
      if (r.acl !== null) aspects['acl'] = r.acl;
      if (r.definition !== null) aspects['definition'] = r.definition;
      put(r.type, r.identity, aspects);
    }
    // Comments, on any object or column; the database's own is in pg_shdescription.
    const comments = await c.query<{ type: string; identity: string; comment: string }>(
      `SELECT i.type, i.identity, d.description AS comment
         FROM pg_description d CROSS JOIN LATERAL pg_identify_object(d.classoid, d.objoid, d.objsubid) i
        WHERE (d.objoid >= ${FIRST_USER_OID} OR (d.classoid = 'pg_namespace'::regclass AND i.identity = 'public'))
          AND coalesce(i.schema, '') NOT IN ${EXCLUDED_SCHEMAS} AND i.identity NOT IN ${EXCLUDED_SCHEMAS}
          AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = d.classoid AND x.objid = d.objoid AND x.deptype = 'e')`,
    );
    for (const r of comments.rows) put(r.type, r.identity, { comment: r.comment });
    await databaseFacts(c, put);
    await roleFacts(c, objects, put);
    await largeObjectFacts(c, put);
    await rowFacts(c, put);
    return { major, objects };
  });
}

type Put = (type: string, identity: string, aspects: Record<string, string>) => void;

/** The database itself: encoding, locale, grants, comment, and its settings (for all roles and per role). */
async function databaseFacts(c: pg.Client, put: Put): Promise<void> {
  const [db] = (
    await c.query<{ encoding: string; collate: string; ctype: string; acl: string; comment: string | null }>(
      `SELECT pg_encoding_to_char(d.encoding) AS encoding, d.datcollate AS collate, d.datctype AS ctype,
              (SELECT string_agg(e, ' ' ORDER BY e) FROM (SELECT CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END || '=' || x.privilege_type AS e
                 FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) x WHERE x.grantee <> d.datdba) s) AS acl,
              shobj_description(d.oid, 'pg_database') AS comment
         FROM pg_database d WHERE d.datname = current_database()`,
    )
  ).rows;
  put('database', '(current)', {
    definition: `encoding ${db!.encoding} collate ${db!.collate} ctype ${db!.ctype}`,
    acl: db!.acl ?? '',
    ...(db!.comment !== null ? { comment: db!.comment } : {}),
  });
  const settings = await c.query<{ role: string; setting: string }>(
    `SELECT coalesce(r.rolname, '(all roles)') AS role, x.setting
       FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole CROSS JOIN LATERAL unnest(s.setconfig) x(setting)
      WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())`,
  );
  const byRole = new Map<string, string[]>();
  for (const r of settings.rows) byRole.set(r.role, [...(byRole.get(r.role) ?? []), r.setting]);
  for (const [role, list] of byRole) put('database setting', role, { value: list.sort().join(' ') });
}

/** Roles the database's objects are owned by or granted to, with their attributes and memberships. */
async function roleFacts(c: pg.Client, objects: ReadonlyMap<string, ObjectFacts>, put: Put): Promise<void> {
  const names = new Set<string>();
  for (const o of objects.values()) {
    if (o.aspects['owner']) names.add(o.aspects['owner']);
    for (const entry of (o.aspects['acl'] ?? '').split(' ')) {
      const m = /^([^=]+)=/.exec(entry);
      if (m && m[1] !== 'PUBLIC') names.add(m[1]!);
    }
  }
  const roles = await c.query<{ name: string; definition: string }>(
    `SELECT r.rolname AS name,
            concat_ws(' ', CASE WHEN r.rolsuper THEN 'SUPERUSER' END, CASE WHEN NOT r.rolinherit THEN 'NOINHERIT' END,
                      CASE WHEN r.rolcreaterole THEN 'CREATEROLE' END, CASE WHEN r.rolcreatedb THEN 'CREATEDB' END,
                      CASE WHEN r.rolcanlogin THEN 'LOGIN' END, CASE WHEN r.rolreplication THEN 'REPLICATION' END,
                      CASE WHEN r.rolbypassrls THEN 'BYPASSRLS' END, CASE WHEN r.rolconnlimit <> -1 THEN 'CONNECTION LIMIT ' || r.rolconnlimit END,
                      'IN ' || (SELECT string_agg(g.rolname, ',' ORDER BY g.rolname) FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid)) AS definition
       FROM pg_roles r WHERE r.rolname = ANY($1)`,
    [[...names]],
  );
  for (const r of roles.rows) put('role', r.name, { definition: r.definition });
}

/** Large objects: owner, grants, comment and a digest of the content. */
async function largeObjectFacts(c: pg.Client, put: Put): Promise<void> {
  const los = await c.query<{ oid: string; owner: string; acl: string | null; digest: string; comment: string | null }>(
    `SELECT m.oid::text AS oid, pg_get_userbyid(m.lomowner) AS owner,
            (SELECT string_agg(x::text, ' ' ORDER BY x::text) FROM unnest(m.lomacl) x) AS acl,
            md5(lo_get(m.oid)) AS digest, obj_description(m.oid, 'pg_largeobject') AS comment
       FROM pg_largeobject_metadata m`,
  );
  for (const l of los.rows) {
    put('large object', l.oid, {
      owner: l.owner,
      value: l.digest,
      ...(l.acl ? { acl: l.acl } : {}),
      ...(l.comment !== null ? { comment: l.comment } : {}),
    });
  }
}

/**
 * Rows of every table (ONLY, so inheritance parents count their own) and
 * populated materialized view, and each sequence's position: a count and an
 * order-independent digest of the rows' text under the stable session.
 */
async function rowFacts(c: pg.Client, put: Put): Promise<void> {
  const rels = await c.query<{ type: string; identity: string; rel: string; kind: string; cols: string | null }>(
    `SELECT i.type, i.identity, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS rel, c.relkind AS kind,
            (SELECT string_agg('t.' || quote_ident(a.attname), ', ' ORDER BY a.attname) FROM pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS cols
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace CROSS JOIN LATERAL pg_identify_object('pg_class'::regclass, c.oid, 0) i
      WHERE c.oid >= ${FIRST_USER_OID} AND (c.relkind IN ('r', 'S') OR (c.relkind = 'm' AND c.relispopulated))
        AND n.nspname NOT IN ${EXCLUDED_SCHEMAS} AND n.nspname NOT LIKE 'pg\\_%'
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`,
  );
  for (const r of rels.rows) {
    if (r.kind === 'S') {
      const [s] = (await c.query<{ v: string }>(`SELECT last_value::text || ' called ' || is_called AS v FROM ${r.rel}`)).rows;
      put(r.type, r.identity, { value: s!.v });
      continue;
    }
    // Sum of per-row digests (as numbers), so the order rows come back in does not matter; columns by name,
    // as pg_dump may reorder an inheritance child's (its inherited columns first).
    const row = r.cols ? `ROW(${r.cols})::text` : `''`;
    const [d] = (
      await c.query<{ n: string; sum: string | null }>(
        `SELECT count(*)::text AS n, sum(('x' || substr(md5(${row}), 1, 15))::bit(60)::bigint)::text AS sum FROM ONLY ${r.rel} t`,
      )
    ).rows;
    put(r.type, r.identity, { rows: `${d!.n} rows, digest ${d!.sum ?? 0}` });
  }
}

/**
 * Normalisations for what differs only because the target is newer, each
 * named: the rule's name is reported with how many values it changed.
 * Pure, so each rule is tested on its own.
 */
export interface Normaliser {
  readonly name: string;
  /** Objects only the newer target has that it makes by itself: not a difference. */
  readonly targetOnly?: (o: ObjectFacts) => boolean;
  /** Applies when the source major is below `before` (and the target's is not). */
  readonly before: number;
  readonly aspect: string;
  readonly side: 'source' | 'target' | 'both';
  readonly apply: (value: string, type: string) => string;
}

export const NORMALISERS: readonly Normaliser[] = [
  {
    // A streaming cutover leaves the source read-only on purpose (its write fence); pgrelocate never copies that setting.
    name: "the cutover's write fence on the source",
    before: Infinity,
    aspect: 'value',
    side: 'source',
    apply: (v, type) =>
      type === 'database setting'
        ? v
            .split(' ')
            .filter((e) => e !== 'default_transaction_read_only=on')
            .join(' ')
        : v,
  },
  {
    // 17 records a domain's NOT NULL as a constraint of its own (domain constraint …_not_null).
    name: 'NOT NULL constraints of domains (17)',
    before: 17,
    aspect: 'exists',
    side: 'target',
    apply: (v) => v,
    targetOnly: (o) => o.type === 'domain constraint' && o.aspects['definition']?.startsWith('n ') === true,
  },
  {
    // 17 added MAINTAIN (VACUUM, ANALYZE, REINDEX…): owners and ALL grants hold it there, and nothing earlier can.
    name: 'MAINTAIN privilege of 17',
    before: 17,
    aspect: 'acl',
    side: 'target',
    apply: (v) =>
      v
        .split(' ')
        .filter((e) => !/=MAINTAIN\*?\//.test(e))
        .join(' '),
  },
  {
    // 16 prints XMLSERIALIZE's default NO INDENT, which 15 did not have.
    name: 'deparse: XMLSERIALIZE … NO INDENT (16)',
    before: 16,
    aspect: 'definition',
    side: 'target',
    apply: (v) => v.replace(/ NO INDENT\)/g, ')'),
  },
  {
    // 16 made JSON and other SQL/JSON words keywords: quote_ident and the deparser quote them there.
    name: 'identifier quoting: new keywords (16)',
    before: 16,
    aspect: 'definition',
    side: 'both',
    apply: (v) => v.replace(/"([a-z_][a-z0-9_$]*)"/g, '$1'),
  },
  {
    // 16 stopped qualifying columns with their table's name where only one table is in scope.
    name: 'deparse: table qualifiers (16)',
    before: 16,
    aspect: 'definition',
    side: 'both',
    apply: (v, type) =>
      /view|rule|policy/.test(type) ? v.replace(/(?<![\w".])(?:"(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)\.(?=["a-z_])/g, '') : v,
  },
];

/** Compare two snapshots; `source` and `target` name the sides in the result. Pure. */
export function compareSnapshots(source: Snapshot, target: Snapshot, normalisers: readonly Normaliser[] = NORMALISERS): Comparison {
  const active = normalisers.filter((n) => source.major < n.before && (n.before === Infinity || target.major >= n.before));
  const normalised: Record<string, number> = {};
  const norm = (value: string | undefined, side: 'source' | 'target', aspect: string, type: string): string | null => {
    if (value === undefined) return null;
    let v = value;
    for (const n of active) {
      if (n.aspect !== aspect || (n.side !== 'both' && n.side !== side)) continue;
      const next = n.apply(v, type);
      if (next !== v) normalised[n.name] = (normalised[n.name] ?? 0) + 1;
      v = next;
    }
    return v;
  };
  const differences: Difference[] = [];
  const byType: Record<string, number> = {};
  for (const [key, s] of source.objects) {
    byType[s.type] = (byType[s.type] ?? 0) + 1;
    const t = target.objects.get(key);
    if (!t) {
      differences.push({ key, aspect: 'exists', source: 'yes', target: null });
      continue;
    }
    for (const aspect of new Set([...Object.keys(s.aspects), ...Object.keys(t.aspects)])) {
      const a = norm(s.aspects[aspect], 'source', aspect, s.type);
      const b = norm(t.aspects[aspect], 'target', aspect, s.type);
      if (a !== b) differences.push({ key, aspect, source: a, target: b });
    }
  }
  for (const [key, t] of target.objects) {
    // Roles are server-wide: the target server may have more that the database does not use.
    if (source.objects.has(key) || t.type === 'role') continue;
    const own = active.find((n) => n.targetOnly?.(t));
    if (own) normalised[own.name] = (normalised[own.name] ?? 0) + 1;
    else differences.push({ key, aspect: 'exists', source: null, target: 'yes' });
  }
  return { compared: source.objects.size, byType, differences, normalised };
}

/** Differences of a method that a plain pg_dump | pg_restore into the same target does not also have. Pure. */
export function beyondBaseline(
  method: readonly Difference[],
  baseline: readonly Difference[],
): { beyond: Difference[]; shared: Difference[] } {
  const same = (a: Difference, b: Difference): boolean => a.key === b.key && a.aspect === b.aspect && a.target === b.target;
  const beyond: Difference[] = [];
  const shared: Difference[] = [];
  for (const d of method) (baseline.some((b) => same(b, d)) ? shared : beyond).push(d);
  return { beyond, shared };
}

/** One line per difference, for a test's message or a report. */
export function formatDifferences(diffs: readonly Difference[], max = 40): string {
  const cut = (v: string | null): string => (v === null ? '(none)' : v.length > 300 ? v.slice(0, 300) + '…' : v);
  return (
    diffs
      .slice(0, max)
      .map((d) => `${d.key} [${d.aspect}]\n    source: ${cut(d.source)}\n    target: ${cut(d.target)}`)
      .join('\n') + (diffs.length > max ? `\n… and ${diffs.length - max} more` : '')
  );
}
