/**
 * What replication does not carry — unlogged tables and large objects —
 * changed between the cutover's pre-copy and its fence, by a pre-hook (which
 * runs after the pre-copy, right before the fence). The cutover must copy
 * exactly those changes again inside the fence, and the target must then
 * hold what the source holds.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ConnInfo } from '../../engine/conn';
import { sql } from './servers';

/** Before the sync: a second unlogged table nobody writes, and large objects to create, rewrite in place and remove. */
export async function prepareUncarried(source: ConnInfo): Promise<void> {
  await sql(
    source,
    `CREATE UNLOGGED TABLE app.cache_untouched (k int PRIMARY KEY, v text);
     INSERT INTO app.cache_untouched SELECT g, repeat('x', 100) FROM generate_series(1, 500) g;
     INSERT INTO app.sessions (user_id, expires_at) SELECT g, now() + interval '1 day' FROM generate_series(1, 40) g;
     SELECT lo_from_bytea(910001, convert_to(repeat('rewritten in place ', 1000), 'UTF8'));
     SELECT lo_from_bytea(910002, convert_to('removed before the fence', 'UTF8'));
     SELECT lo_from_bytea(910003, convert_to(repeat('left alone ', 1000), 'UTF8'));`,
  );
}

/**
 * A pre-hook command (a node script in a temporary folder, the connection in
 * a file beside it: no password on a command line) that changes one unlogged
 * table and three large objects: one created, one rewritten in place with the
 * same size, one removed.
 */
export function uncarriedHook(source: ConnInfo): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgrelocate-hook-'));
  // The connection file holds the test server's password: gone when the test process ends.
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'conn.json'), JSON.stringify(source), { mode: 0o600 });
  const conn = path.resolve(__dirname, '..', '..', 'engine', 'conn.js');
  writeFileSync(
    path.join(dir, 'hook.js'),
    `const { openClient } = require(${JSON.stringify(conn)});
     (async () => {
       const c = await openClient(require('./conn.json'));
       await c.query("INSERT INTO app.sessions (user_id, expires_at) VALUES (4242, now())");
       await c.query("SELECT lo_from_bytea(910004, convert_to('created before the fence', 'UTF8'))");
       await c.query("BEGIN; SELECT lo_put(910001, 0, convert_to('REWRITTEN', 'UTF8')); COMMIT");
       await c.query("SELECT lo_unlink(910002)");
       await c.end();
     })().catch((e) => { console.error(e.message); process.exit(1); });`,
  );
  return `node ${JSON.stringify(path.join(dir, 'hook.js'))}`;
}

/** What the cutover reports it copied, before and inside the fence. */
export interface UncarriedReport {
  readonly precopiedRows: number;
  readonly precopiedLargeObjects: number;
  readonly unloggedRows: number;
  readonly largeObjects: number;
}

/** Inside the fence only the changed table and the two objects written since were copied; the target holds what the source holds. */
export async function assertUncarried(source: ConnInfo, target: ConnInfo, r: UncarriedReport): Promise<void> {
  const lo = `SELECT oid::text AS oid, md5(lo_get(oid)) AS md5 FROM pg_largeobject_metadata ORDER BY oid`;
  const [sLo, tLo] = await Promise.all([sql(source, lo), sql(target, lo)]);
  assert.deepEqual(tLo, sLo, 'the large objects on the target are the source’s');
  assert.ok(tLo.some((x) => x.oid === '910004') && !tLo.some((x) => x.oid === '910002'), 'created one there, removed one gone');
  const tables = `SELECT (SELECT md5(string_agg(s::text, ',' ORDER BY s::text)) FROM app.sessions s) AS s,
                         (SELECT md5(string_agg(u::text, ',' ORDER BY k)) FROM app.cache_untouched u) AS u,
                         (SELECT count(*)::int FROM app.sessions) AS n`;
  const [s, t] = await Promise.all([sql<{ n: number }>(source, tables), sql<{ n: number }>(target, tables)]);
  assert.deepEqual(t, s, 'the unlogged tables on the target are the source’s');
  assert.ok(r.precopiedRows >= 540 && r.precopiedLargeObjects >= 6, JSON.stringify(r));
  // Only app.sessions was written since the pre-copy: the untouched table's 500 rows were not copied again.
  assert.equal(r.unloggedRows, s[0]!.n, JSON.stringify(r));
  assert.equal(r.largeObjects, 2, `created and rewritten, nothing else copied inside the fence: ${JSON.stringify(r)}`);
}
