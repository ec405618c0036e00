/**
 * Removing what the pglogical strategy created: the subscription (which drops
 * its slot on the provider), both nodes (with the provider's replication-set
 * memberships), any slot left behind, and the extension on each side where
 * pgrelocate created it. Idempotent; finds pgrelocate's nodes by name when the run
 * record is gone.
 */
import type pg from 'pg';
import { dropSlot } from '../../streaming/artefacts';
import type { PglogicalMeta } from './meta';

async function hasPglogical(c: pg.Client): Promise<boolean> {
  return ((await c.query(`SELECT 1 FROM pg_extension WHERE extname = 'pglogical'`)).rowCount ?? 0) > 0;
}

/** Whether to drop the extension: pgrelocate created it, or (no record) no node but pgrelocate's ever used it. */
async function dropExtensionIfOurs(c: pg.Client, created: boolean | undefined): Promise<boolean> {
  const others = await c.query(`SELECT 1 FROM pglogical.node WHERE node_name NOT LIKE 'pgrelocate\\_%'`);
  if (created === false || (created === undefined && (others.rowCount ?? 0) > 0)) return false;
  await c.query('DROP EXTENSION IF EXISTS pglogical CASCADE');
  // CREATE EXTENSION made the schema the control file names; it can outlive the extension.
  await c.query('DROP SCHEMA IF EXISTS pglogical CASCADE');
  return true;
}

/**
 * Subscriber side: subscription, node, extension. `keepNode` (a way back is
 * armed on this server): the subscription only — a logical slot on this
 * server then cannot decode past pglogical's node dropped with its extension
 * ("could not find pg_class entry" for pglogical.node, measured on 15 with
 * pglogical 2.4), so node and extension wait for cleanup.
 */
export async function removeSubscriberSide(dst: pg.Client, meta?: PglogicalMeta, keepNode = false): Promise<string[]> {
  const removed: string[] = [];
  if (!(await hasPglogical(dst))) return removed;
  const subs = await dst.query<{ sub_name: string }>(`SELECT sub_name FROM pglogical.subscription WHERE sub_name LIKE 'pgrelocate\\_%'`);
  for (const s of subs.rows) {
    await dst.query(`SELECT pglogical.drop_subscription($1, true)`, [s.sub_name]);
    removed.push(`pglogical subscription ${s.sub_name} (target)`);
  }
  if (keepNode) return removed;
  const nodes = await dst.query<{ node_name: string }>(`SELECT node_name FROM pglogical.node WHERE node_name LIKE 'pgrelocate\\_%'`);
  for (const n of nodes.rows) {
    await dst.query(`SELECT pglogical.drop_node($1, true)`, [n.node_name]);
    removed.push(`pglogical node ${n.node_name} (target)`);
  }
  if (await dropExtensionIfOurs(dst, meta?.createdExtension.target)) removed.push('extension pglogical (target)');
  return removed;
}

/** Provider side: leftover slot, node (and its set memberships), extension. */
export async function removeProviderSide(src: pg.Client, slot: string | null, meta?: PglogicalMeta): Promise<string[]> {
  const removed: string[] = [];
  const slots = await src.query<{ slot_name: string }>(
    `SELECT slot_name FROM pg_replication_slots
      WHERE database = current_database() AND plugin = 'pglogical_output' AND (slot_name = $1 OR slot_name LIKE '%pgrelocate%')`,
    [slot ?? ''],
  );
  for (const s of slots.rows) {
    await dropSlot(src, s.slot_name);
    removed.push(`slot ${s.slot_name} (source)`);
  }
  if (!(await hasPglogical(src))) return removed;
  const nodes = await src.query<{ node_name: string }>(`SELECT node_name FROM pglogical.node WHERE node_name LIKE 'pgrelocate\\_%'`);
  for (const n of nodes.rows) {
    // Set memberships first: drop_node keeps a node whose sets still hold tables on some versions.
    await src.query(
      `SELECT pglogical.replication_set_remove_table(rs.set_name, rt.set_reloid)
         FROM pglogical.replication_set_table rt JOIN pglogical.replication_set rs USING (set_id)
         JOIN pglogical.node nd ON nd.node_id = rs.set_nodeid WHERE nd.node_name = $1`,
      [n.node_name],
    );
    await src.query(
      `SELECT pglogical.replication_set_remove_sequence(rs.set_name, rq.set_seqoid)
         FROM pglogical.replication_set_seq rq JOIN pglogical.replication_set rs USING (set_id)
         JOIN pglogical.node nd ON nd.node_id = rs.set_nodeid WHERE nd.node_name = $1`,
      [n.node_name],
    );
    await src.query(`SELECT pglogical.drop_node($1, true)`, [n.node_name]);
    removed.push(`pglogical node ${n.node_name} (source)`);
  }
  if (await dropExtensionIfOurs(src, meta?.createdExtension.source)) removed.push('extension pglogical (source)');
  return removed;
}
