/**
 * `check`: turn two inventories into blocking errors and warnings, each with
 * the fix. Pure: every fact it needs is passed in, so each rule is unit-tested.
 */
import { crossingText, describeFilter, isFiltered, type FilterPlan, type TableFilter } from './filter';
import { opt } from './option-names';
import type { Inventory } from './inspect';
import { rollbackBlocker } from './streaming/rollback';
import { qualified } from './inspect';
import { ident } from './conn';
import { formatBytes } from './units';
import { unhandled, type Strategy } from './strategies/names';
import { bucardoChecks } from './strategies/bucardo/checks';
import { logicalChecks } from './strategies/logical/checks';
import { pglogicalChecks } from './strategies/pglogical/checks';

export interface Finding {
  readonly level: 'error' | 'warning' | 'info';
  readonly code: string;
  readonly message: string;
  readonly fix: string;
}

export interface CheckFacts {
  readonly source: Inventory;
  readonly target: Inventory;
  readonly strategy: Strategy;
  readonly force: boolean;
  /** Same host, port and database on both sides. */
  readonly sameEndpoint: boolean;
  /** Client tools: the major found, or the error text when none fits. */
  readonly tools: { readonly major: number; readonly version: string } | { readonly error: string; readonly fix: string };
  /** Free bytes where dumps are written (dump-restore only). */
  readonly workDirFree?: number;
  readonly workDir?: string;
  /** logical: allow REPLICA IDENTITY FULL on tables without a usable key. */
  readonly replicaIdentityFull?: boolean;
  /**
   * The source's C functions the target could not create, with the target's
   * error (a missing library, or one built for another major). Probed by
   * preflight in a rolled-back transaction; only when the target user is a
   * superuser, the only role that may create them.
   */
  readonly unloadableFunctions?: readonly { readonly signature: string; readonly library: string; readonly error: string }[];
  /** The include/exclude filter, and what it means on the source (preflight reads it when there is a filter). */
  readonly filter?: TableFilter;
  readonly filterPlan?: FilterPlan;
}

/** Names for a message: the first few, then how many more. Pure. */
export const list = (names: string[], max = 8): string =>
  names.slice(0, max).join(', ') + (names.length > max ? ` and ${names.length - max} more` : '');

/** Bytes a directory-format dump needs, conservatively: the table data, uncompressed. */
export function estimateDumpBytes(inv: Inventory): number {
  const tableBytes = inv.database.tables.reduce((s, t) => s + t.bytes, 0);
  return Math.max(tableBytes, 16 * 1024 * 1024);
}

export function runChecks(f: CheckFacts): Finding[] {
  const out: Finding[] = [];
  const s = f.source;
  const err = (code: string, message: string, fix = ''): void => void out.push({ level: 'error', code, message, fix });
  const warn = (code: string, message: string, fix = ''): void => void out.push({ level: 'warning', code, message, fix });
  const info = (code: string, message: string, fix = ''): void => void out.push({ level: 'info', code, message, fix });

  targetChecks(f, err, warn);
  filterChecks(f, err, warn, info);
  sourceReadChecks(f, err);
  featureChecks(f, err, warn);
  if ('error' in f.tools) {
    err('client-tools', f.tools.error, f.tools.fix);
  } else {
    info('client-tools', `Using pg_dump ${f.tools.version}.`);
  }
  if (f.strategy === 'dump-restore' && f.workDirFree !== undefined) {
    const need = estimateDumpBytes(s);
    if (f.workDirFree < need) {
      err(
        'disk-space',
        `The dump needs up to ${formatBytes(need)} in ${f.workDir ?? 'the work directory'}, which has ${formatBytes(f.workDirFree)} free.`,
        `Free space there or pass ${opt('workDir')} pointing at a larger disk.`,
      );
    }
  }
  if (s.database.largeObjects > 0) {
    info('large-objects', `The source holds ${s.database.largeObjects} large objects; they are copied with the data.`);
  }
  const unlogged = s.database.tables.filter((x) => x.unlogged).map((x) => qualified(x));
  if (unlogged.length > 0) info('unlogged-tables', `Unlogged tables are copied as unlogged: ${list(unlogged)}.`);
  if (s.server.inRecovery && s.server.major < 10) {
    info(
      'standby-source',
      'The source is a pre-10 standby: pg_dump runs with --no-synchronized-snapshots; stop writes on the primary for a consistent copy.',
    );
  }
  writableChecks(f, err);
  targetCapabilityChecks(f, err);
  if (f.strategy !== 'dump-restore') {
    ownershipChecks(f, err);
    fenceRoleChecks(f, err);
    const blocker = rollbackBlocker(s.server, f.target.server);
    info(
      'rollback',
      blocker
        ? `cutover --rollback is unavailable: ${blocker}.`
        : 'cutover --rollback can arm a way back: at the switch, reverse replication from the new server to this source.',
    );
  }
  switch (f.strategy) {
    case 'logical':
      logicalChecks(f, err, warn, info);
      break;
    case 'pglogical':
      pglogicalChecks(f, err, warn, info);
      break;
    case 'bucardo':
      bucardoChecks(f, warn, info);
      break;
    case 'dump-restore':
      break;
    default:
      unhandled(f.strategy);
  }
  return out;
}

/** The pair itself and the target: not the source again, not older, empty unless --force, writable by the user. */
function targetChecks(f: CheckFacts, err: Add, warn: Add): void {
  const { source: s, target: t } = f;
  if (f.sameEndpoint) {
    err('same-database', 'Source and target are the same database.', 'Point --target at a different server or database.');
  }
  if (t.server.major < s.server.major) {
    err(
      'target-older',
      `The target runs PostgreSQL ${t.server.major}, older than the source's ${s.server.major}; PostgreSQL does not support moving data to an older major.`,
      `Create the target with PostgreSQL ${s.server.major} or newer.`,
    );
  }
  if (t.database.userObjectCount > 0) {
    if (f.force) {
      warn(
        'target-not-empty',
        `The target database "${t.database.name}" already holds ${t.database.userObjectCount} objects; --force was given, so objects the migration brings will replace them.`,
        'Use an empty database to keep everything already on the target.',
      );
    } else {
      err(
        'target-not-empty',
        `The target database "${t.database.name}" is not empty (${t.database.userObjectCount} tables, types, functions or large objects).`,
        `Use an empty database, drop its objects, or pass ${opt('force')} to let pgrelocate replace the objects the migration brings.`,
      );
    }
  }
  if (!t.database.canCreate) {
    err(
      'target-no-create',
      `User "${t.server.currentUser}" may not create schemas in the target database "${t.database.name}".`,
      `GRANT CREATE ON DATABASE "${t.database.name}" TO "${t.server.currentUser}", or connect as the database owner.`,
    );
  }
  if (!t.server.canCreateRole) {
    warn(
      'target-no-createrole',
      `User "${t.server.currentUser}" cannot create roles on the target: roles and grants from the source are skipped, and objects owned by missing roles fail to restore.`,
      'Connect as a user with CREATEROLE (the managed admin user), or create the roles first.',
    );
  }
}

/** What the source user cannot read: rows hidden by row security, tables and sequences without the grant. */
function sourceReadChecks(f: CheckFacts, err: Add): void {
  const s = f.source;
  const filtered = s.database.tables.filter((x) => x.rlsFiltered).map((x) => qualified(x));
  if (filtered.length > 0) {
    err(
      'source-rls',
      `Row-level security would hide rows of ${filtered.length} source tables from user "${s.server.currentUser}": ${list(filtered)}. pgrelocate reads with row_security = off, so the copy would fail rather than miss them.`,
      `Run pgrelocate as a role that bypasses row-level security: ALTER ROLE ${ident(s.server.currentUser)} BYPASSRLS (as a superuser; on RDS, rds_superuser can grant it), or as a superuser.`,
    );
  }
  const unreadable = s.database.tables.filter((x) => !x.readable).map((x) => qualified(x));
  if (unreadable.length > 0) {
    err(
      'source-unreadable',
      `User "${s.server.currentUser}" cannot read ${unreadable.length} source tables: ${list(unreadable)}.`,
      s.server.major >= 14
        ? `GRANT pg_read_all_data TO "${s.server.currentUser}", or connect as the owner or a superuser.`
        : `GRANT SELECT on those tables to "${s.server.currentUser}", or connect as the owner or a superuser.`,
    );
  }
  const unreadableSeqs = s.database.sequences.filter((x) => !x.readable).map((x) => qualified(x));
  if (unreadableSeqs.length > 0) {
    err(
      'source-unreadable-sequences',
      `User "${s.server.currentUser}" cannot read ${unreadableSeqs.length} source sequences: ${list(unreadableSeqs)}; their values are copied (inside the cutover's write fence for the streaming strategies).`,
      s.server.major >= 14
        ? `GRANT pg_read_all_data TO "${s.server.currentUser}", or connect as the owner or a superuser.`
        : `GRANT SELECT ON ALL SEQUENCES IN SCHEMA … TO "${s.server.currentUser}", or connect as the owner or a superuser.`,
    );
  }
}

/** Extensions, publications, subscriptions and the encoding: what moves differently, or not at all. */
function featureChecks(f: CheckFacts, err: Add, warn: Add): void {
  const { source: s, target: t } = f;
  const available = new Set(t.database.availableExtensions);
  const missing = s.database.extensions.filter((e) => e.name !== 'plpgsql' && !available.has(e.name)).map((e) => e.name);
  if (missing.length > 0) {
    err(
      'extension-missing',
      `Extensions used by the source are not available on the target: ${list(missing)}.`,
      'Install them on the target server (or enable them in the managed service), or drop them from the source first.',
    );
  }
  const wide = s.database.publications.filter((p) => p.wide).map((p) => p.name);
  if (wide.length > 0 && !t.server.isSuperuser) {
    warn(
      'publication-needs-superuser',
      `Source publications ${list(wide)} publish FOR ALL TABLES or FOR TABLES IN SCHEMA, which only a superuser may create; user "${t.server.currentUser}" is not one on the target, so they will not be copied (the other publications are).`,
      'Create them on the target as a superuser after the cutover (CREATE PUBLICATION … FOR ALL TABLES), before pointing their subscribers there.',
    );
  }
  if (s.database.subscriptions.length > 0) {
    warn(
      'source-subscriptions',
      `The source database subscribes to other servers (${list([...s.database.subscriptions])}); subscriptions are not copied — a copy would be a second subscriber on the same slot.`,
      'After the cutover, drop them on the source and create them on the target (CREATE SUBSCRIPTION … WITH (create_slot = false, slot_name = …, copy_data = false)) to carry on from the same slot.',
    );
  }
  if (s.server.settings['server_encoding'] && t.server.settings['server_encoding'] !== s.server.settings['server_encoding']) {
    warn(
      'encoding-differs',
      `Server encodings differ (source ${s.server.settings['server_encoding']}, target ${t.server.settings['server_encoding']}); characters the target cannot encode fail to restore.`,
      'Create the target database with the source encoding (CREATE DATABASE … ENCODING).',
    );
  }
}

/**
 * Objects every method restores through the schema but the target server
 * cannot take: each would stop a restore half-way, so each is refused here
 * with what to change on the source (pg_upgrade's own checks refuse the same).
 */
function targetCapabilityChecks(f: CheckFacts, err: Add): void {
  const { source: s, target: t } = f;
  const fns = s.database.cFunctions;
  if (fns.length > 0 && !t.server.isSuperuser) {
    err(
      'c-functions-need-superuser',
      `${fns.length} source functions are written in C outside any extension (${list(fns.map((x) => x.signature))}); only a superuser may create them, and user "${t.server.currentUser}" is not one on the target (managed services allow no C functions but their extensions').`,
      'Replace them with an extension the target offers, or drop them and what depends on them from the source (DROP FUNCTION … CASCADE lists it), or connect to the target as a superuser.',
    );
  }
  const unloadable = f.unloadableFunctions ?? [];
  if (unloadable.length > 0) {
    // Every function is named (they are what must change), grouped by library with the target's error once.
    const byLib = new Map<string, { error: string; fns: string[] }>();
    for (const x of unloadable) {
      const g = byLib.get(x.library) ?? { error: x.error, fns: [] };
      g.fns.push(x.signature);
      byLib.set(x.library, g);
    }
    err(
      'c-library-missing',
      `The target cannot load the C library of ${unloadable.length} source functions: ${[...byLib.values()]
        .map((g) => `${g.fns.join(', ')} (${g.error})`)
        .join('; ')}.`,
      `Install ${[...byLib.keys()].join(', ')} on the target server, built for PostgreSQL ${t.server.major}, at the same path; or drop those functions and what depends on them from the source.`,
    );
  }
  if (s.database.lz4Columns.length > 0 && !t.server.hasLz4) {
    const cols = s.database.lz4Columns;
    err(
      'lz4-unavailable',
      `${cols.length} source columns use lz4 compression, which the target server was built without: ${cols.map((c) => `${c.table}.${c.column}`).join(', ')}.`,
      `On the source: ${cols
        .map((c) => `ALTER ${c.matview ? 'MATERIALIZED VIEW' : 'TABLE'} ${c.table} ALTER COLUMN ${c.column} SET COMPRESSION pglz;`)
        .join(' ')} (stored values stay readable), or use a target built with lz4.`,
    );
  }
  const genOverPlain = s.database.generatedOverPlainColumns;
  if (genOverPlain.length > 0 && t.server.major >= 16) {
    err(
      'generated-child-of-plain',
      `${genOverPlain.length} columns of inheritance children are generated where the parent's column is not, which PostgreSQL 16 and later refuse: ${genOverPlain.join(', ')}.`,
      'On the source, make the child column plain (ALTER TABLE child NO INHERIT parent; ALTER TABLE child ALTER COLUMN … DROP EXPRESSION; ALTER TABLE child INHERIT parent), or detach the child for good.',
    );
  }
}

/**
 * The streaming strategies change source tables: a publication (and REPLICA
 * IDENTITY) needs their owner, pglogical's sets and Bucardo's triggers too.
 * Tables whose owner the user cannot act as fail half-way otherwise; the fix is
 * a membership a managed service's admin user can grant (RDS ≤ 15: the master
 * itself, having CREATEROLE; 16+: a role with ADMIN on the owner).
 */
function ownershipChecks(f: CheckFacts, err: Add): void {
  const s = f.source;
  if (s.server.isSuperuser) return;
  const foreign = s.database.tables.filter((t) => !t.owned && t.kind === 'r');
  if (foreign.length === 0) return;
  const owners = [...new Set(foreign.map((t) => t.owner))].sort();
  err(
    'source-tables-not-owned',
    `User "${s.server.currentUser}" does not own ${foreign.length} source tables and is no member of their owners (${owners.join(', ')}): ${list(foreign.map((t) => qualified(t)))}. The ${f.strategy} strategy must change them (publication and replica identity, replication sets, or triggers).`,
    `On the source, as a role with ADMIN on the owners: GRANT ${owners.map((o) => ident(o)).join(', ')} TO ${ident(s.server.currentUser)}; or run pgrelocate as the owner, or use ${opt('strategy')} dump-restore.`,
  );
}

/**
 * The cutover's fence sets the database read-only; a login role with its own
 * setting would override that, so the fence changes it too — which the user
 * must be allowed to do, or the cutover would refuse with the source about to
 * be fenced. Found here, before anything changes.
 */
function fenceRoleChecks(f: CheckFacts, err: Add): void {
  const s = f.source;
  const stuck = s.database.fenceRoles.filter((r) => !r.alterable).map((r) => r.name);
  if (stuck.length === 0) return;
  err(
    'fence-roles-unalterable',
    `Login roles ${stuck.join(', ')} set default_transaction_read_only themselves, which would override the cutover's write fence, and user "${s.server.currentUser}" may not change their settings.`,
    `As a role that may (a superuser): ${stuck.map((r) => `ALTER ROLE ${ident(r)} RESET default_transaction_read_only; ALTER ROLE ${ident(r)} IN DATABASE ${ident(s.database.name)} RESET default_transaction_read_only;`).join(' ')}`,
  );
}

/**
 * Where pgrelocate must write: the target always; the source for the strategies
 * that create a publication and slot, nodes, or triggers there. A database a
 * previous cutover fenced (or any database read-only for this role), or a
 * standby, fails only after the schema is restored; refuse it up front.
 */
function writableChecks(f: CheckFacts, err: Add): void {
  const sides = [
    { side: 'target', inv: f.target, writes: true },
    { side: 'source', inv: f.source, writes: f.strategy === 'logical' || f.strategy === 'pglogical' || f.strategy === 'bucardo' },
  ] as const;
  for (const { side, inv, writes } of sides) {
    if (!writes) continue;
    const db = inv.database.name;
    if (inv.server.inRecovery) {
      err(
        `${side}-standby`,
        `The ${side} is a standby (in recovery): it cannot take the ${side === 'target' ? 'schema and rows' : `${f.strategy} strategy's publication, slot or triggers`}.`,
        `Point the ${side} URL at the primary.`,
      );
    } else if (inv.server.settings['default_transaction_read_only'] === 'on') {
      err(
        `${side}-read-only`,
        `The ${side} database ${db} is read-only for ${inv.server.currentUser} (default_transaction_read_only = on); a pgrelocate cutover leaves its source that way.`,
        `If a pgrelocate cutover fenced it: pgrelocate cleanup --unfence (with this database as --source). Otherwise, in one psql session (its own transactions are read-only too until the first line): SET default_transaction_read_only = off; ALTER DATABASE ${ident(db)} RESET default_transaction_read_only; and ALTER ROLE … IN DATABASE ${ident(db)} RESET default_transaction_read_only for the roles that have it (\\drds in psql lists them).`,
      );
    }
  }
}

export function hasErrors(findings: readonly Finding[]): boolean {
  return findings.some((x) => x.level === 'error');
}

export type Add = (code: string, message: string, fix?: string) => void;

/** Large objects travel outside replication, copied before the fence and checked inside it: warned once per strategy, naming how it replicates. */
export function largeObjectsAtCutover(s: Inventory, replicated: string, warn: Add): void {
  if (s.database.largeObjects === 0) return;
  warn(
    'large-objects-at-cutover',
    `${s.database.largeObjects} large objects are not ${replicated}; pgrelocate copies them before the cutover's fence, and inside it those written since.`,
    'Objects rewritten right up to the cutover lengthen the write-blackout, and the fence holds only writes that touch a table: rehearse it.',
  );
}

/** Tables whose UPDATE/DELETE cannot be replicated: no primary key and no usable replica identity. */
export function tablesWithoutIdentity(inv: Inventory): string[] {
  return inv.database.tables
    .filter((t) => t.kind === 'r' && !t.unlogged)
    .filter((t) => t.replicaIdentity === 'n' || (t.replicaIdentity === 'd' && t.primaryKey.length === 0))
    .map((t) => qualified(t));
}

/**
 * Tables without a key whose rows REPLICA IDENTITY FULL cannot match (a column
 * whose type has no equality operator: point, json, xml…): the logical
 * strategy leaves them out of the publication and copies them again, whole,
 * inside the cutover's fence, as pglogical's insert-only tables are.
 */
export function fullCopyTables(inv: Inventory): string[] {
  const noKey = new Set(tablesWithoutIdentity(inv));
  return inv.database.tables.filter((t) => noKey.has(qualified(t)) && t.columnsWithoutEquality.length > 0).map((t) => qualified(t));
}

/** The values of a comma-separated setting such as shared_preload_libraries. Pure. */
export function settingList(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((x) => x.trim().replace(/^"(.*)"$/, '$1'))
    .filter((x) => x !== '');
}

type Say = (code: string, message: string, fix?: string) => void;

/** What the filter keeps, a pattern that matches nothing, and each dependency it cuts. */
function filterChecks(f: CheckFacts, err: Say, warn: Say, info: Say): void {
  const p = f.filterPlan;
  if (!isFiltered(f.filter) || !p) return;
  info(
    'filter',
    `The filter (${describeFilter(f.filter)}) keeps ${p.kept} relations and leaves out ${p.left}` +
      `${p.excludeSchemas.length ? `, schemas ${list([...p.excludeSchemas])} whole` : ''}. Large objects, roles and database settings are migrated whatever it says.`,
  );
  for (const u of p.unmatched) {
    const flag = opt(u.kind);
    const message = `${flag} ${JSON.stringify(u.pattern)} matches nothing on the source.`;
    if (u.kind.startsWith('include'))
      err('filter-matches-nothing', message, `Correct the pattern (names are folded to lower case unless "quoted"), or drop ${flag}.`);
    else warn('filter-matches-nothing', message, 'Correct the pattern if something was meant to be left out.');
  }
  const bySchema = new Map<string, string[]>();
  for (const k of p.keptFor) bySchema.set(k.schema, [...(bySchema.get(k.schema) ?? []), `${k.by} uses ${k.object}`]);
  for (const [schema, why] of bySchema)
    warn(
      'filter-schema-kept',
      `The filter leaves out schema ${schema}, but kept relations use its types or functions (${list([...new Set(why)], 4)}): it is made on the target with those, without its tables, views and sequences.`,
      'Nothing to do if that is intended; to leave the schema out whole, leave out what uses it too.',
    );
  for (const c of p.crossings) {
    const t = crossingText(c);
    (c.level === 'error' ? err : warn)(`filter-${c.kind.replace(' ', '-')}`, t.message, t.fix);
  }
}
