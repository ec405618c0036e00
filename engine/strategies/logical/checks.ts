/** What `check` verifies for the logical strategy, beside the checks every strategy shares. Pure. */
import { opt } from '../../option-names';
import { qualified } from '../../inspect';
import { fullCopyTables, tablesWithoutIdentity, type Add, type CheckFacts, list, largeObjectsAtCutover } from '../../check';

export function logicalChecks(f: CheckFacts, err: Add, warn: Add, info: Add): void {
  // err/warn always pass a fix; info may not.
  const { source: s, target: t } = f;
  if (s.server.major < 10) {
    err(
      'logical-source-too-old',
      `Native logical replication needs a PostgreSQL 10 or newer source (this one is ${s.server.major}).`,
      `Use ${opt('strategy')} pglogical (9.4–9.6) or dump-restore.`,
    );
    return;
  }
  if (s.server.settings['wal_level'] !== 'logical') {
    err(
      'wal-level',
      `The source has wal_level = ${s.server.settings['wal_level'] ?? 'unknown'}; logical replication needs wal_level = logical.`,
      'Set wal_level = logical (ALTER SYSTEM SET wal_level = logical) and restart the source; on RDS/Aurora set rds.logical_replication = 1 in its parameter group and reboot.',
    );
  }
  if (!s.server.canReplicate) {
    err(
      'no-replication-privilege',
      `User "${s.server.currentUser}" may not create replication slots on the source.`,
      `ALTER ROLE "${s.server.currentUser}" REPLICATION (on RDS: GRANT rds_replication TO "${s.server.currentUser}"), or connect as a superuser.`,
    );
  }
  // The run needs one slot and one WAL sender of the source's.
  for (const [code, what, setting, used, fix] of [
    ['no-free-slot', 'replication slot', 'max_replication_slots', s.server.slotsUsed, ' or drop an unused slot'],
    ['no-free-wal-sender', 'WAL sender', 'max_wal_senders', s.server.walSendersUsed, ''],
  ] as const) {
    const max = Number(s.server.settings[setting] ?? 0);
    if (max - used < 1)
      err(code, `The source has no free ${what} (${used} of ${setting} = ${max} in use).`, `Raise ${setting} (restart needed)${fix}.`);
  }
  if (!t.server.canCreateSubscription) {
    err(
      'no-subscription-privilege',
      `User "${t.server.currentUser}" may not create subscriptions on the target.`,
      t.server.major >= 16
        ? `GRANT pg_create_subscription TO "${t.server.currentUser}", or connect as a superuser / the managed admin user.`
        : 'Connect to the target as a superuser or the managed admin user (rds_superuser).',
    );
  }
  const noKey = tablesWithoutIdentity(s);
  if (noKey.length > 0) {
    if (f.replicaIdentityFull) {
      const whole = new Set(fullCopyTables(s));
      const unmatched = s.database.tables
        .filter((x) => whole.has(qualified(x)))
        .map((x) => `${qualified(x)} (${x.columnsWithoutEquality.join(', ')})`);
      if (unmatched.length > 0) {
        warn(
          'replica-identity-full-no-equality',
          `${unmatched.length} tables without a key have columns whose type has no equality operator, so REPLICA IDENTITY FULL cannot find their rows: they are left out of the publication and copied again in full inside the cutover window: ${list(unmatched)}.`,
          'Add a primary key (or a unique index on NOT NULL columns and REPLICA IDENTITY USING INDEX) to replicate their changes instead (large ones lengthen the write-blackout).',
        );
      }
      const full = noKey.filter((x) => !whole.has(x));
      if (full.length > 0) {
        warn(
          'replica-identity-full',
          `${full.length} tables have no primary key or replica identity; pgrelocate sets REPLICA IDENTITY FULL on them on the source (restored at cleanup): ${list(full)}.`,
          'Add primary keys to make replication of their updates and deletes cheaper.',
        );
      }
    } else {
      err(
        'no-replica-identity',
        `${noKey.length} tables have no primary key or replica identity, so their updates and deletes cannot be replicated: ${list(noKey)}.`,
        `Add a primary key (or ALTER TABLE … REPLICA IDENTITY USING INDEX on a unique NOT NULL index), or pass ${opt('replicaIdentityFull')} to let pgrelocate set REPLICA IDENTITY FULL on them, or use ${opt('strategy')} dump-restore.`,
      );
    }
  }
  largeObjectsAtCutover(s, 'streamed by logical replication', warn);
  if (s.database.matviews.length > 0) {
    info('matviews-refresh', `${s.database.matviews.length} materialized views are refreshed on the target during cutover.`);
  }
  info(
    'ddl-freeze',
    'Schema changes (DDL) on the source are not replicated: status, verify and cutover name each one the target lacks, and cutover refuses until it has them; freezing migrations between sync and cutover avoids that.',
  );
}
