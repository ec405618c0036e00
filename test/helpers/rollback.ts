/**
 * The way back, as every streaming strategy must give it: after a cutover
 * with `rollback: true` the application writes on the new server, then
 * `rollback` moves it back — every write made there on the old source, the old
 * source writable, the new server refusing.
 */
import assert from 'node:assert/strict';
import type { ConnInfo } from '../../engine/conn';
import { cutover } from '../../engine/strategies';
import { runRollback, type RollbackReport } from '../../engine/streaming/rollback';
import { APP_ROLE } from '../../scripts/sample-db';
import type { WriteLoad } from '../../scripts/write-load';
import { sql } from './servers';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** With the write load on the old source until the cutover: the application moves to the new server, writes, and is moved back. */
export async function rollBackUnderLoad(
  source: ConnInfo,
  target: ConnInfo,
  load: WriteLoad,
  appPassword: string,
  roll: () => Promise<RollbackReport> = () => runRollback(source, target, {}, () => undefined),
): Promise<RollbackReport> {
  const app = (c: ConnInfo): ConnInfo => ({ ...c, user: APP_ROLE, password: appPassword });
  load.switchTo(target);
  await sleep(1500);
  // A key-less table too: reverse replication cannot match its rows, so it is copied back whole.
  await sql(app(target), `INSERT INTO public.schema_migrations (version) VALUES ('on the new server')`);
  const r = await roll();
  assert.ok(r.blackoutSeconds < 5, `rollback blackout ${r.blackoutSeconds}s`);
  load.switchTo(source);
  await sleep(800);
  const s = await load.stop();
  assert.ok(s.committed > 100, `${s.committed} committed`);
  const ledger = await load.ledger.check(source);
  assert.equal(ledger.ok, true, `a write made on the new server is missing on the old one: ${JSON.stringify(ledger).slice(0, 400)}`);
  const back = await sql<{ n: number }>(
    source,
    `SELECT count(*)::int AS n FROM public.schema_migrations WHERE version = 'on the new server'`,
  );
  assert.equal(back[0]!.n, 1, 'the key-less table came back');
  await sql(app(source), `INSERT INTO public.schema_migrations (version) VALUES ('old source writable again')`);
  await assert.rejects(
    sql(app(target), `BEGIN READ WRITE; INSERT INTO public.schema_migrations (version) VALUES ('late'); COMMIT`),
    /moved by pgrelocate/,
  );
  return r;
}

/**
 * A streaming run under the write load, cut over with the way back armed
 * (which starts only once the forward replication is gone), then rolled back
 * with every check of rollBackUnderLoad.
 */
export async function cutOverAndBack(source: ConnInfo, target: ConnInfo, load: WriteLoad, appPassword: string): Promise<RollbackReport> {
  await sleep(800);
  const c = await cutover(source, target, { jobs: 2, verify: 'count', rollback: true });
  const names = c.steps.map((x) => x.name);
  assert.ok(names.indexOf('rollback-start') > names.indexOf('remove-replication'), names.join(','));
  return rollBackUnderLoad(source, target, load, appPassword);
}

/** The reverse replication's artefacts left on either side (none after a rollback and cleanup). */
export async function backLeftovers(source: ConnInfo, target: ConnInfo): Promise<string[]> {
  const rows = [
    ...(await sql<{ n: string }>(source, `SELECT 'subscription ' || subname AS n FROM pg_subscription WHERE subname LIKE 'pgrelocate%'`)),
    ...(await sql<{ n: string }>(target, `SELECT 'slot ' || slot_name AS n FROM pg_replication_slots WHERE slot_name LIKE 'pgrelocate%'`)),
    ...(await sql<{ n: string }>(target, `SELECT 'publication ' || pubname AS n FROM pg_publication WHERE pubname LIKE 'pgrelocate%'`)),
  ];
  return rows.map((r) => r.n);
}
