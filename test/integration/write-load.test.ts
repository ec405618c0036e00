/** The write load and its ledger, against a real server. */
import assert from 'node:assert/strict';
import { WriteLoad } from '../../scripts/write-load';
import { freshDatabase, hasServer, server, sql } from '../helpers/servers';
import { loadSample, APP_ROLE } from '../../scripts/sample-db';

describe('write load generator', function () {
  it('keeps a ledger of every committed write, and the ledger check catches a lost one', async function () {
    if (!hasServer(16)) this.skip();
    const db = await freshDatabase(await server(16), 'load');
    const sample = await loadSample(db, { sizeBytes: 3e6 });
    const load = new WriteLoad(db, { rate: 200, workers: 2, user: { name: APP_ROLE, password: sample.appPassword } });
    await load.start();
    await new Promise((r) => setTimeout(r, 2500));
    const summary = await load.stop();
    assert.ok(summary.committed > 100, `committed ${summary.committed}`);
    assert.equal(summary.failed, 0, summary.lastError ?? '');
    const ok = await load.ledger.check(db);
    assert.equal(ok.ok, true, JSON.stringify(ok).slice(0, 500));
    assert.ok(ok.checked > 50);
    // Lose one committed event and one committed update: the check must say so.
    const ev = load.ledger.entries().find((e) => e.table === 'events')!;
    await sql(db, 'DELETE FROM audit.events WHERE id = $1', [ev.key]);
    const upd = load.ledger.entries().find((e) => e.table === 'orders' && e.token !== null)!;
    await sql(db, `UPDATE app.orders SET note = 'stale' WHERE id = $1`, [upd.key]);
    const bad = await load.ledger.check(db);
    assert.equal(bad.ok, false);
    assert.ok(bad.missing.includes(`audit.events ${ev.key}`));
    assert.ok(bad.wrong.includes(`app.orders ${upd.key}`));
  });
});
