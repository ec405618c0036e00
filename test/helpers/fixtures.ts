/** Inventory fixtures for pure tests of the checks and the copy planner. */
import type { Inventory, TableInfo } from '../../engine/inspect';

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

/** One server and database as inspect reads them: a PostgreSQL `major` with what the checks look at, overridable. */
export function inventory(
  major: number,
  over: {
    tables?: TableInfo[];
    objects?: number;
    ext?: string[];
    avail?: string[];
    createRole?: boolean;
    canCreate?: boolean;
    pubs?: { name: string; wide: boolean }[];
    subs?: string[];
    fenceRoles?: { name: string; alterable: boolean }[];
    superuser?: boolean;
    lz4?: boolean;
    cFunctions?: { signature: string; library: string; symbol: string }[];
    lz4Columns?: { table: string; column: string; matview: boolean }[];
    generatedOverPlain?: string[];
  } = {},
): Inventory {
  return {
    server: {
      versionNum: major * 10000,
      major,
      version: `PostgreSQL ${major}.0`,
      inRecovery: false,
      settings: { server_encoding: 'UTF8', wal_level: 'logical' },
      currentUser: 'admin',
      isSuperuser: over.superuser ?? false,
      canCreateRole: over.createRole ?? true,
      canCreateDb: true,
      canReplicate: true,
      managedAdminOf: [],
      databases: [],
      roles: [],
      slotsUsed: 0,
      walSendersUsed: 0,
      canCreateSubscription: true,
      hasLz4: over.lz4 ?? true,
    },
    database: {
      name: 'app',
      bytes: 1e9,
      canCreate: over.canCreate ?? true,
      tables: over.tables ?? [tableInfo('orders')],
      sequences: [],
      matviews: [],
      views: 0,
      functions: 0,
      largeObjects: 0,
      generatedColumnTables: [],
      extensions: (over.ext ?? ['plpgsql']).map((name) => ({ name, version: '1', schema: 'public' })),
      availableExtensions: over.avail ?? ['plpgsql', 'citext'],
      publications: over.pubs ?? [],
      subscriptions: over.subs ?? [],
      fenceRoles: over.fenceRoles ?? [],
      userObjectCount: over.objects ?? 0,
      cFunctions: over.cFunctions ?? [],
      lz4Columns: over.lz4Columns ?? [],
      generatedOverPlainColumns: over.generatedOverPlain ?? [],
    },
  };
}
