/**
 * Cutover through a real PgBouncer (Debian's), with the application's write
 * load going through it: its transactions wait in the pooler instead of
 * failing, and land on the target; a pgrelocate killed while the pool is
 * paused leaves it resumed by the watchdog.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import type pg from 'pg';
import { openClient, toUrl } from '../../engine/conn';
import { ExitCode } from '../../engine/errors';
import { cleanup, cutover } from '../../engine/strategies';
import { sync } from '../../engine/strategies/logical';
import { adminSession, poolEntry } from '../../engine/streaming/pgbouncer';
import { APP_ROLE, loadSample } from '../../scripts/sample-db';
import { WriteLoad } from '../../scripts/write-load';
import { pgrelocate } from '../helpers/cli';
import { hasPgbouncer, startPgbouncer, type Bouncer } from '../../scripts/local-pgbouncer';
import { freshDatabase, hasServer, newestPgDump, server, sql } from '../helpers/servers';

const CLI = path.resolve(__dirname, '..', '..', 'scripts', 'cli.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function entry(b: Bouncer, pool: string) {
  const c = await adminSession(b.admin);
  try {
    return (await poolEntry(c, pool))!;
  } finally {
    await c.end();
  }
}

describe('cutover through PgBouncer (Debian 1.18, transaction pooling)', function () {
  let bouncer: Bouncer | null = null;
  before(async function () {
    if (!hasPgbouncer() || !hasServer(14) || !hasServer(17) || (await newestPgDump()) < 14) this.skip();
  });
  afterEach(async function () {
    await bouncer?.stop();
    bouncer = null;
  });

  async function setup() {
    const source = await freshDatabase(await server(14), 'bsrc');
    const sample = await loadSample(source, { sizeBytes: 3e6 });
    const target = await freshDatabase(await server(17), 'btgt');
    await sync(source, target, { jobs: 2, replicaIdentityFull: true });
    bouncer = await startPgbouncer({ shop: source }, [{ name: APP_ROLE, password: sample.appPassword }]);
    // The application reaches the database only through PgBouncer, and never changes its address.
    const load = new WriteLoad(bouncer.conn('shop', APP_ROLE, sample.appPassword), {
      rate: 200,
      workers: 4,
      user: { name: APP_ROLE, password: sample.appPassword },
    });
    return { source, target, load, bouncer };
  }

  it('under write load: 0 failed transactions, every committed write on the target, the pool pointed at it', async function () {
    const { source, target, load, bouncer: b } = await setup();
    await load.start();
    try {
      await sleep(800);
      const c = await cutover(source, target, {
        jobs: 2,
        verify: 'count',
        pgbouncer: { admin: b.admin, ini: b.ini, database: 'shop' },
      });
      await sleep(1000);
      const s = await load.stop();
      assert.equal(s.failed + s.uncertain, 0, `failed ${s.failed}, uncertain ${s.uncertain}: ${s.lastError}`);
      assert.ok(s.committed > 200, `${s.committed} committed`);
      const ledger = await load.ledger.check(target);
      assert.equal(ledger.ok, true, JSON.stringify(ledger).slice(0, 400));
      assert.ok(c.pgbouncerPauseSeconds !== null && c.pgbouncerPauseSeconds < 1, `paused in ${c.pgbouncerPauseSeconds}s`);
      assert.ok(c.blackoutSeconds < 3, `blackout ${c.blackoutSeconds}s`);
      const e = await entry(b, 'shop');
      assert.deepEqual([e.port, e.database, e.paused], [target.port, target.database, false]);
      assert.match(readFileSync(b.ini, 'utf8'), new RegExp(`^shop = host=\\S+ port=${target.port} dbname=${target.database}$`, 'm'));
      // The writes after the switch went to the target, through the same address.
      const [n] = await sql<{ n: string }>(target, `SELECT count(*)::text AS n FROM audit.events WHERE kind = 'load'`);
      assert.ok(Number(n!.n) > 0);
    } finally {
      await load.stop();
    }
    await cleanup(source, target, { unfence: true });
  });

  it('pgrelocate killed while the pool is paused: the watchdog resumes it on the source within seconds; cutover again goes through, nothing failed', async function () {
    const { source, target, load, bouncer: b } = await setup();
    const env = {
      PGRELOCATE_SOURCE_URL: toUrl(source, { password: true }),
      PGRELOCATE_TARGET_URL: toUrl(target, { password: true }),
      PGRELOCATE_PGBOUNCER_ADMIN_URL: toUrl(b.admin, { password: true }),
    };
    const args = ['cutover', '--pgbouncer-ini', b.ini, '--pgbouncer-database', 'shop', '--verify', 'none', '--quiet'];
    await load.start();
    let blocker: pg.Client | null = null;
    try {
      // The target stops applying, so the cutover waits inside its fence with the pool paused.
      blocker = await openClient(target);
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE app.orders IN SHARE MODE');
      const child = execa(process.execPath, [CLI, ...args], { env, reject: false });
      for (let i = 0; !(await entry(b, 'shop')).paused; i++) {
        assert.ok(i < 1200, 'the pool was paused');
        await sleep(25);
      }
      await sleep(300);
      const killedAt = Date.now();
      child.kill('SIGKILL');
      await child;
      // A transaction through PgBouncer gets through again: the watchdog resumed the pool (still on the source).
      for (let i = 0; (await entry(b, 'shop')).paused; i++) {
        assert.ok(i < 400, 'the watchdog resumed the pool');
        await sleep(25);
      }
      const resumedMs = Date.now() - killedAt;
      assert.ok(resumedMs < 3000, `resumed ${resumedMs} ms after the kill`);
      assert.equal((await entry(b, 'shop')).port, source.port, 'still on the source: the switch was not made');
      await blocker.query('ROLLBACK');
      await blocker.end();
      blocker = null;
      const again = await pgrelocate([...args.filter((a) => a !== '--quiet'), '--json'], env);
      assert.equal(again.exitCode, ExitCode.ok, again.stderr);
      await sleep(800);
      const s = await load.stop();
      assert.equal(s.failed + s.uncertain, 0, `failed ${s.failed}, uncertain ${s.uncertain}: ${s.lastError}`);
      const ledger = await load.ledger.check(target);
      assert.equal(ledger.ok, true, JSON.stringify(ledger).slice(0, 400));
      assert.equal((await entry(b, 'shop')).port, target.port);
      process.stdout.write(`      watchdog: pool resumed ${resumedMs} ms after pgrelocate was killed\n`);
    } finally {
      await blocker?.query('ROLLBACK').catch(() => undefined);
      await blocker?.end().catch(() => undefined);
      await load.stop();
    }
    await cleanup(source, target, { unfence: true });
  });
});
