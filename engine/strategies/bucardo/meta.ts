import { runTag } from '../../streaming/snapshot';

/** What a bucardo run records: names, where its control database and private directory are, what it created. */

export interface BucardoMeta {
  /** The control server's directory, shared by its runs: the `bucardo` role's passfile, the daemon's pid files and log. */
  readonly dir: string;
  /** The control server (no password): cutover reaches it as the `bucardo` role through the passfile. */
  readonly control: { readonly host: string; readonly port: number; readonly user: string };
  /** This run installed the control database (the last run out drops it; the database is also marked). */
  installedControl: boolean;
  readonly sourceDb: string;
  readonly targetDb: string;
  readonly relgroup: string;
  readonly sync: string;
  /** Tables without a primary key: Bucardo cannot track them; copied in full inside the cutover fence. */
  fullCopy: string[];
  /** Whether the `bucardo` schema (triggers, delta tables) was absent before, on each side (cleanup drops it). */
  readonly createdSchema: { readonly source: boolean; readonly target: boolean };
}

/** Names of a run's Bucardo objects, from the run id. Pure. */
export function bucardoNames(runId: string): Pick<BucardoMeta, 'sourceDb' | 'targetDb' | 'relgroup' | 'sync'> {
  const n = runTag(runId);
  return { sourceDb: `${n}_src`, targetDb: `${n}_dst`, relgroup: n, sync: n };
}
