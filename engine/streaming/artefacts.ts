/** Removing replication artefacts: a slot (ending the WAL sender that holds it) and a subscription (without its remote slot). */
import type pg from 'pg';
import { ident } from '../conn';
import { PgrelocateError } from '../errors';

/** Drop a slot, first ending the WAL sender that holds it. */
export async function dropSlot(c: pg.Client, slot: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await c.query<{ active_pid: number | null }>(`SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, [slot]);
    if (r.rowCount === 0) return;
    const pid = r.rows[0]!.active_pid;
    if (pid === null) {
      await c.query(`SELECT pg_drop_replication_slot($1)`, [slot]);
      return;
    }
    await c.query(`SELECT pg_terminate_backend($1)`, [pid]);
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new PgrelocateError(
    'slot-busy',
    `Replication slot ${slot} stays active.`,
    `Stop what streams from it, then: SELECT pg_drop_replication_slot('${slot}');`,
  );
}

/** Drop a subscription without leaving its slot behind (the slot is dropped from the source side). */
export async function dropSubscription(dst: pg.Client, name: string): Promise<boolean> {
  const r = await dst.query(`SELECT 1 FROM pg_subscription WHERE subname = $1`, [name]);
  if (r.rowCount === 0) return false;
  await dst.query(`ALTER SUBSCRIPTION ${ident(name)} DISABLE`);
  await dst.query(`ALTER SUBSCRIPTION ${ident(name)} SET (slot_name = NONE)`);
  await dst.query(`DROP SUBSCRIPTION ${ident(name)}`);
  return true;
}
