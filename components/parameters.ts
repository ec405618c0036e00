/**
 * RDS parameter sets, as pure data: what the source needs for replication,
 * what the target runs with during the bulk copy, and after cutover.
 * Static parameters take effect only after a reboot (`pending-reboot`).
 */

export interface DbParameter {
  readonly name: string;
  readonly value: string;
  readonly applyMethod: 'immediate' | 'pending-reboot';
}

/** Parameters RDS only applies at restart. */
const STATIC = new Set([
  'rds.logical_replication',
  'max_replication_slots',
  'max_wal_senders',
  'max_worker_processes',
  'shared_preload_libraries',
  'max_logical_replication_workers',
]);

function p(name: string, value: string | number): DbParameter {
  return { name, value: String(value), applyMethod: STATIC.has(name) ? 'pending-reboot' : 'immediate' };
}

/** The source's replication settings (seed 002): logical decoding, slots, senders, workers. */
export function sourceReplicationParameters(strategy: 'logical' | 'dump-restore' | 'pglogical' | 'bucardo'): DbParameter[] {
  if (strategy === 'dump-restore' || strategy === 'bucardo') return [];
  const params = [
    p('rds.logical_replication', 1),
    p('max_replication_slots', 10),
    p('max_wal_senders', 15),
    p('max_worker_processes', 16),
    p('wal_sender_timeout', 0),
  ];
  if (strategy === 'pglogical') params.push(p('shared_preload_libraries', 'pg_stat_statements,pglogical'));
  return params;
}

/**
 * Static settings the target has from its creation, the same in both phases
 * (a change would need a reboot): pglogical's library, which runs on both
 * sides; logical decoding, so the way back (`rollback`) can publish the new
 * server's writes to the old one, and a later move can start from it.
 */
const staticTargetParameters = (strategy: string): DbParameter[] => [
  ...(strategy === 'pglogical' ? [p('shared_preload_libraries', 'pg_stat_statements,pglogical')] : []),
  p('rds.logical_replication', 1),
];

/** The target during the copy: fast bulk load, nothing it can lose that the copy cannot redo. */
export function targetBulkLoadParameters(strategy = 'logical'): DbParameter[] {
  return [
    ...staticTargetParameters(strategy),
    p('maintenance_work_mem', 2097152), // kB: 2 GiB for index builds
    p('max_wal_size', 65536), // MB
    p('checkpoint_timeout', 1800), // s
    p('synchronous_commit', 'off'),
    p('autovacuum', 0),
    p('max_logical_replication_workers', 8),
    p('max_worker_processes', 16),
    p('max_replication_slots', 10),
  ];
}

/** The target after cutover: durable, autovacuum on, room for logical replication (a replica region, a later move). */
export function targetProductionParameters(strategy = 'logical'): DbParameter[] {
  return [
    ...staticTargetParameters(strategy),
    p('synchronous_commit', 'on'),
    p('autovacuum', 1),
    p('max_logical_replication_workers', 8),
    p('max_worker_processes', 16),
    p('max_replication_slots', 10),
  ];
}

export function needsReboot(params: readonly DbParameter[]): boolean {
  return params.some((x) => x.applyMethod === 'pending-reboot');
}

/** "17.2" → "postgres17". */
export function parameterGroupFamily(engineVersion: string): string {
  return `postgres${engineVersion.split('.')[0]}`;
}
