/** What `check` verifies for the pglogical strategy, beside the checks every strategy shares. Pure. */
import { opt } from '../../option-names';
import { settingList, tablesWithoutIdentity, type Add, type CheckFacts, list, largeObjectsAtCutover } from '../../check';

/** pglogical: the extension and its library on both sides, logical WAL, slots, senders and workers, superuser rights. */
export function pglogicalChecks(f: CheckFacts, err: Add, warn: Add, info: Add): void {
  const { source: s, target: t } = f;
  if (s.server.major < 9.4) {
    err(
      'pglogical-source-too-old',
      `pglogical needs a PostgreSQL 9.4 or newer source (this one is ${s.server.version}).`,
      `Use ${opt('strategy')} dump-restore or bucardo.`,
    );
    return;
  }
  for (const [side, inv] of [
    ['source', s],
    ['target', t],
  ] as const) {
    if (!inv.database.availableExtensions.includes('pglogical')) {
      err(
        `pglogical-missing-${side}`,
        `The pglogical extension is not installed on the ${side} server (PostgreSQL ${inv.server.major}).`,
        `Install it on the ${side} (Debian/Ubuntu: apt-get install postgresql-${inv.server.major}-pglogical; RDS: available from 9.6.10 / 10.5 on), then restart with shared_preload_libraries = pglogical.`,
      );
    } else if (!settingList(inv.server.settings['shared_preload_libraries']).includes('pglogical')) {
      err(
        `pglogical-not-preloaded-${side}`,
        `The ${side} does not load pglogical (shared_preload_libraries = '${inv.server.settings['shared_preload_libraries'] ?? ''}').`,
        `Add pglogical to shared_preload_libraries on the ${side} and restart it (RDS: in its parameter group, then reboot).`,
      );
    }
    if (!inv.server.isSuperuser && !inv.server.managedAdminOf.includes('rds_superuser')) {
      err(
        `pglogical-privilege-${side}`,
        `User "${inv.server.currentUser}" is not a superuser on the ${side}; pglogical's node and subscription functions need one.`,
        `Connect to the ${side} as a superuser (on RDS: a member of rds_superuser).`,
      );
    }
    const workers = Number(inv.server.settings['max_worker_processes'] ?? 0);
    if (workers > 0 && workers < 4) {
      err(
        `pglogical-workers-${side}`,
        `The ${side} has max_worker_processes = ${workers}; pglogical needs a supervisor, a manager per database and apply/sync workers.`,
        `Set max_worker_processes to at least 8 on the ${side} and restart it.`,
      );
    }
  }
  const allow = s.server.settings['output_plugin_libraries'];
  if (allow !== undefined && !settingList(allow).includes('pglogical_output') && !s.server.isSuperuser) {
    err(
      'pglogical-output-not-allowed',
      `The source allows only these logical decoding output plugins: ${allow}; pglogical needs pglogical_output, and only a superuser may extend the list for its session.`,
      `Add pglogical_output to output_plugin_libraries on the source (ALTER SYSTEM SET output_plugin_libraries = '${allow}, pglogical_output'; SELECT pg_reload_conf()), or connect as a superuser.`,
    );
  }
  if (s.server.settings['wal_level'] !== 'logical') {
    err(
      'wal-level',
      `The source has wal_level = ${s.server.settings['wal_level'] ?? 'unknown'}; pglogical needs wal_level = logical.`,
      'Set wal_level = logical and restart the source; on RDS set rds.logical_replication = 1 in its parameter group and reboot.',
    );
  }
  const slots = Number(s.server.settings['max_replication_slots'] ?? 0);
  if (slots - s.server.slotsUsed < 2) {
    err(
      'no-free-slot',
      `The source has ${slots - s.server.slotsUsed} free replication slots; pglogical needs one for the subscription and one while a table synchronizes.`,
      'Raise max_replication_slots (restart needed) or drop unused slots.',
    );
  }
  const senders = Number(s.server.settings['max_wal_senders'] ?? 0);
  if (senders - s.server.walSendersUsed < 2) {
    err(
      'no-free-wal-sender',
      `The source has ${senders - s.server.walSendersUsed} free WAL senders; pglogical needs two (apply and table sync).`,
      'Raise max_wal_senders (restart needed).',
    );
  }
  if (s.database.generatedColumnTables.length > 0) {
    err(
      'pglogical-generated-columns',
      `${s.database.generatedColumnTables.length} source tables have generated columns, which pglogical 2 cannot replicate (its table copy names them, and its apply worker crashed the target server with signal 11 on them here, pglogical 2.4.2 on 15): ${list([...s.database.generatedColumnTables])}.`,
      `Use ${opt('strategy')} logical (sources with generated columns are 12 or newer, where native logical replication works), or dump-restore.`,
    );
  }
  const noKey = tablesWithoutIdentity(s);
  if (noKey.length > 0) {
    warn(
      'pglogical-insert-only',
      `${noKey.length} tables have no primary key: they go to the default_insert_only replication set, so their UPDATEs and DELETEs are not replicated; pgrelocate copies them again in full inside the cutover window: ${list(noKey)}.`,
      'Add primary keys to replicate every change of those tables (large key-less tables lengthen the write-blackout).',
    );
  }
  largeObjectsAtCutover(s, 'replicated by pglogical', warn);
  if (s.database.matviews.length > 0) {
    info('matviews-refresh', `${s.database.matviews.length} materialized views are refreshed on the target during cutover.`);
  }
  info(
    'ddl-freeze',
    'Schema changes (DDL) on the source are not replicated: status, verify and cutover name each one the target lacks, and cutover refuses until it has them; freezing migrations between sync and cutover avoids that.',
  );
}
