/** What `check` verifies for the bucardo strategy, beside the checks every strategy shares. Pure. */
import { qualified } from '../../inspect';
import { type Add, type CheckFacts, list, largeObjectsAtCutover } from '../../check';

/** Bucardo: needs no replication right, only triggers on the source; what it cannot carry is copied in the cutover window. */
export function bucardoChecks(f: CheckFacts, warn: Add, info: Add): void {
  const { source: s } = f;
  const noKey = s.database.tables.filter((t) => t.kind === 'r' && !t.unlogged && t.primaryKey.length === 0).map((t) => qualified(t));
  if (noKey.length > 0) {
    warn(
      'bucardo-full-copy',
      `${noKey.length} tables have no primary key, which Bucardo needs to track changes; pgrelocate copies them in full inside the cutover window: ${list(noKey)}.`,
      'Add primary keys (large key-less tables lengthen the write-blackout).',
    );
  }
  largeObjectsAtCutover(s, 'replicated by Bucardo', warn);
  info(
    'bucardo-triggers',
    `Bucardo adds a "bucardo" schema and a delta trigger on every replicated table of the source (user "${s.server.currentUser}" must own the tables or be a superuser); cleanup removes them.`,
  );
  if (s.database.matviews.length > 0) {
    info('matviews-refresh', `${s.database.matviews.length} materialized views are refreshed on the target during cutover.`);
  }
  info(
    'ddl-freeze',
    'Schema changes (DDL) on the source are not replicated: status, verify and cutover name each one the target lacks, and cutover refuses until it has them; freezing migrations between sync and cutover avoids that (seed 004).',
  );
}
