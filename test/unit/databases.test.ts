import assert from 'node:assert/strict';
import { createDatabaseSql } from '../../engine/databases';
import { PgrelocateError } from '../../engine/errors';
import { Together } from '../../engine/streaming/together';

describe('whole clusters', function () {
  it('the databases meet before the fence and before the switch: none goes on until every one still taking part is there', async function () {
    const t = new Together(3);
    const passed: string[] = [];
    const a = t.arrive('fence').then(() => passed.push('a'));
    const b = t.arrive('fence').then(() => passed.push('b'));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(passed, [], 'two of three wait');
    // The third was switched by an earlier cutover: it only finishes, and the others stop waiting for it.
    t.leave();
    await Promise.all([a, b]);
    assert.deepEqual(passed.sort(), ['a', 'b']);
    t.noteFence(1000);
    t.noteFence(1010);
    t.noteSwitch(1200);
    t.noteSwitch(1250);
    assert.equal(t.blackoutSeconds, 0.25, 'from the first fence to the last switch');
  });

  it('one failing stops the others where they wait, and at their next meeting point', async function () {
    const t = new Together(3);
    const waiting = t.arrive('switch');
    t.fail(new Error('final LSN not applied within 60s'));
    await assert.rejects(waiting, (e: PgrelocateError) => e.code === 'cutover-aborted' && /final LSN not applied/.test(e.message));
    await assert.rejects(t.arrive('fence'), /Another database's cutover failed/);
    assert.equal(t.blackoutSeconds, null);
  });

  it('a database is created as the source has it: encoding always, the locale when the target’s template0 differs', function () {
    const d = { name: 'Shop', owner: 'app', encoding: 'UTF8', collate: 'en_US.UTF-8', ctype: 'en_US.UTF-8' };
    assert.equal(createDatabaseSql(d, true), `CREATE DATABASE "Shop" TEMPLATE template0 ENCODING 'UTF8'`);
    assert.equal(
      createDatabaseSql(d, false),
      `CREATE DATABASE "Shop" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'en_US.UTF-8' LC_CTYPE 'en_US.UTF-8'`,
    );
  });
});
