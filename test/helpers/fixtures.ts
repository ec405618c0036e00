/** Inventory fixtures for pure tests of the checks and the copy planner. */
import type { TableInfo } from '../../engine/inspect';

/** A plain table with a primary key, 8 KiB unless told otherwise. */
export function tableInfo(name: string, over: Partial<TableInfo> = {}): TableInfo {
  return {
    schema: 'app',
    name,
    kind: 'r',
    unlogged: false,
    partitionOf: null,
    rowEstimate: 10,
    bytes: 8192,
    totalBytes: 16384,
    primaryKey: ['id'],
    replicaIdentity: 'd',
    hasUsableUniqueIndex: true,
    readable: true,
    rlsFiltered: false,
    owner: 'app',
    owned: true,
    columnsWithoutEquality: [],
    ...over,
  };
}
