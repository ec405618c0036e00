import { runTag } from '../../streaming/snapshot';

/** What a pglogical run records about its artefacts, so cutover and cleanup find and remove exactly them. */

export interface PglogicalMeta {
  readonly providerNode: string;
  readonly subscriberNode: string;
  readonly subscription: string;
  /** Tables without a primary key, in `default_insert_only`: copied again in full inside the cutover fence. */
  insertOnly: string[];
  /** Batches of tables already replicating (resume starts after them). */
  batchesDone: number;
  /** Whether pgrelocate created the extension on each side (then cleanup drops it). */
  readonly createdExtension: { readonly source: boolean; readonly target: boolean };
}

/** Node and subscription names of a run: `pgrelocate_<12 hex of the run id>_…`. Pure. */
export function pglogicalNames(runId: string): Pick<PglogicalMeta, 'providerNode' | 'subscriberNode' | 'subscription'> {
  const n = runTag(runId);
  return { providerNode: `${n}_provider`, subscriberNode: `${n}_subscriber`, subscription: n };
}
