/** Removing what the bucardo strategy created: its part of the shared daemon and control database, then the `bucardo` schema (and its triggers) on each side. */
import type pg from 'pg';
import type { BucardoControl } from './control';
import type { BucardoMeta } from './meta';
import { dropBucardoSchema } from './sync';

export async function removeBucardo(control: BucardoControl, meta: BucardoMeta, src: pg.Client, dst: pg.Client): Promise<string[]> {
  // The daemon's sync first: it would recreate what is dropped under it.
  const removed = await control.release(meta, meta.installedControl);
  await src.query('SET default_transaction_read_only = off');
  if (meta.createdSchema.source && (await dropBucardoSchema(src))) removed.push('schema bucardo with its delta triggers (source)');
  if (meta.createdSchema.target && (await dropBucardoSchema(dst))) removed.push('schema bucardo (target)');
  return removed;
}
