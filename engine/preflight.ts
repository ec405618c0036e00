/**
 * Preflight: inspect both endpoints, look for client tools and disk, and run
 * the checks. Read-only: nothing is created on either side.
 */
import { mkdirSync, statfsSync } from 'node:fs';
import os from 'node:os';
import { literal, withClient, type ConnInfo } from './conn';
import { runChecks, type CheckFacts, type Finding } from './check';
import type { Strategy } from './strategies/names';
import { isPgrelocateError, PgrelocateError } from './errors';
import { checkFilter, isFiltered, readFilterPlan, type FilterPlan, type TableFilter } from './filter';
import { inspect, type CFunction, type Inventory } from './inspect';
import { chooseClientTools, findClientTools, type ClientTools } from './tools';

export interface PreflightOptions {
  readonly strategy: Strategy;
  readonly force?: boolean;
  readonly workDir?: string;
  readonly replicaIdentityFull?: boolean;
  /** Whether a dump is written to workDir (dump-restore); false skips the disk check. */
  readonly writesDump?: boolean;
  /** Which schemas and tables are migrated: the source's inventory lists only those. */
  readonly filter?: TableFilter;
  /**
   * Called once the source's inventory and usable client tools are known,
   * before the target answers and the checks run, for work that only reads the
   * source (the copy's schema dump). The caller stops that work if the checks refuse.
   */
  readonly onSourceKnown?: (source: Inventory, tools: ClientTools, filterPlan: FilterPlan | undefined) => void;
}

export interface Preflight {
  readonly source: Inventory;
  readonly target: Inventory;
  readonly tools: ClientTools | null;
  readonly findings: readonly Finding[];
  readonly ok: boolean;
  /** The facts the findings came from, to re-run the checks for another strategy. */
  readonly facts: CheckFacts;
}

/** Free bytes on the filesystem holding `dir` (created if missing). */
export function freeBytes(dir: string): number {
  mkdirSync(dir, { recursive: true });
  const s = statfsSync(dir);
  return Number(s.bavail) * Number(s.bsize);
}

export function defaultWorkDir(): string {
  return process.env['PGRELOCATE_WORK_DIR'] ?? os.tmpdir();
}

export async function preflight(source: ConnInfo, target: ConnInfo, opts: PreflightOptions): Promise<Preflight> {
  const filter = isFiltered(opts.filter) ? checkFilter(opts.filter) : undefined;
  // The installed client tools are looked for while the servers answer.
  const known = Promise.all([
    inspect(source, 'source', filter),
    filter ? withClient(source, 'source', (c) => readFilterPlan(c, filter)) : undefined,
    findClientTools(),
  ] as const);
  const onSourceKnown = opts.onSourceKnown;
  if (onSourceKnown) {
    // No usable tools is a finding of the checks below, and a failed inventory the preflight's own error;
    // early work that fails to begin is done later by the caller.
    known.then(([inv, plan, installed]) => onSourceKnown(inv, chooseClientTools(installed, inv.server.major), plan)).catch(() => undefined);
  }
  const [[s, filterPlan, installed], t] = await Promise.all([known, inspect(target, 'target')]);
  let tools: ClientTools | null = null;
  let toolFact: { major: number; version: string } | { error: string; fix: string };
  try {
    tools = chooseClientTools(installed, s.server.major);
    toolFact = { major: tools.major, version: tools.version };
  } catch (e) {
    if (!isPgrelocateError(e)) throw e;
    toolFact = { error: e.message, fix: e.fix };
  }
  const workDir = opts.workDir ?? defaultWorkDir();
  const facts: CheckFacts = {
    source: s,
    target: t,
    strategy: opts.strategy,
    force: opts.force ?? false,
    sameEndpoint: sameDatabase(source, target, s, t),
    tools: toolFact,
    ...(opts.writesDump === false ? {} : { workDirFree: freeBytes(workDir), workDir }),
    replicaIdentityFull: opts.replicaIdentityFull ?? false,
    ...(filter && filterPlan ? { filter, filterPlan } : {}),
    ...(s.database.cFunctions.length > 0 && t.server.isSuperuser
      ? { unloadableFunctions: await probeCFunctions(target, s.database.cFunctions) }
      : {}),
  };
  const findings = runChecks(facts);
  return { source: s, target: t, tools, findings, ok: !findings.some((f) => f.level === 'error'), facts };
}

/**
 * A preflight's findings for another strategy or flags: the same inventories,
 * the checks run again (pure), so a caller that chose the strategy from one
 * preflight does not make the command query both servers twice.
 */
export function recheck(pre: Preflight, o: { strategy: Strategy; force?: boolean; replicaIdentityFull?: boolean }): Preflight {
  const facts: CheckFacts = {
    ...pre.facts,
    strategy: o.strategy,
    force: o.force ?? pre.facts.force,
    replicaIdentityFull: o.replicaIdentityFull ?? pre.facts.replicaIdentityFull ?? false,
  };
  const findings = runChecks(facts);
  return { ...pre, facts, findings, ok: !findings.some((f) => f.level === 'error') };
}

/**
 * Whether the target can create each C function the source has: CREATE
 * FUNCTION loads the library and looks the symbol up (check_function_bodies),
 * inside a transaction that is rolled back, so nothing is left on the target.
 * One probe per library and symbol; the restore would load the same libraries.
 */
export async function probeCFunctions(
  target: ConnInfo,
  fns: readonly CFunction[],
): Promise<{ signature: string; library: string; error: string }[]> {
  return withClient(target, 'target', async (c) => {
    const out: { signature: string; library: string; error: string }[] = [];
    const seen = new Map<string, string | null>();
    await c.query('BEGIN');
    try {
      await c.query('SET LOCAL check_function_bodies = on');
      for (const fn of fns) {
        const key = `${fn.library}\u0000${fn.symbol}`;
        if (!seen.has(key)) {
          await c.query('SAVEPOINT probe');
          try {
            await c.query(
              `CREATE FUNCTION pg_temp.pgrelocate_probe() RETURNS void LANGUAGE c AS ${literal(fn.library)}, ${literal(fn.symbol)}`,
            );
            seen.set(key, null);
          } catch (e) {
            seen.set(key, (e as Error).message);
          }
          await c.query('ROLLBACK TO SAVEPOINT probe');
        }
        const error = seen.get(key);
        if (error) out.push({ signature: fn.signature, library: fn.library, error });
      }
    } finally {
      await c.query('ROLLBACK').catch(() => undefined);
    }
    return out;
  });
}

function sameDatabase(a: ConnInfo, b: ConnInfo, ai: Inventory, bi: Inventory): boolean {
  const local = (h: string): string => (h === 'localhost' || h === '::1' ? '127.0.0.1' : h);
  return (
    local(a.host) === local(b.host) && a.port === b.port && ai.database.name === bi.database.name && ai.server.version === bi.server.version
  );
}

/** The client tools, or the error that lists every blocking finding with its fix: nothing has been changed yet. */
export function requireReady(pre: Preflight): ClientTools {
  if (pre.ok && pre.tools) return pre.tools;
  const errors = pre.findings.filter((f) => f.level === 'error');
  throw new PgrelocateError(
    'check-failed',
    `Preflight checks failed; nothing was changed:\n  ${errors.map((e) => `${e.message}\n    fix: ${e.fix}`).join('\n  ')}`,
    errors[0]?.fix ?? 'See the findings above.',
    { findings: pre.findings },
  );
}
