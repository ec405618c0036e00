/**
 * The cutover's write fence on real servers, against clients that do not play
 * along: one that insists on READ WRITE, a pgrelocate killed inside the fence
 * and after the switch, a target that stops applying (the guardrail), a
 * cleanup run twice. What must hold: no committed write lost, the source
 * writable again by itself when pgrelocate cannot finish, one command to take
 * a stopped cutover up again.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { execa } from 'execa';
import type pg from 'pg';
import { openClient, toUrl, type ConnInfo } from '../../engine/conn';
import { ExitCode, type PgrelocateError } from '../../engine/errors';
import { cleanup, cutover } from '../../engine/strategies';
import { sync } from '../../engine/strategies/logical';
import { APP_ROLE, loadSample } from '../../scripts/sample-db';
import { WriteLoad } from '../../scripts/write-load';
import { pgrelocate } from '../helpers/cli';
import { freshDatabase, hasServer, newestPgDump, server, sql } from '../helpers/servers';
import { assertUncarried, prepareUncarried, uncarriedHook } from '../helpers/uncarried';
import { rollBackUnderLoad } from '../helpers/rollback';
import type { RollbackReport } from '../../engine/streaming/rollback';

const CLI = path.resolve(__dirname, '..', '..', 'scripts', 'cli.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function setup(from: number, to: number) {
  const source = await freshDatabase(await server(from), 'fsrc');
  const sample = await loadSample(source, { sizeBytes: 3e6 });
  const target = await freshDatabase(await server(to), 'ftgt');
  const app = { ...source, user: APP_ROLE, password: sample.appPassword };
  return { source, target, sample, app };
}

/** A logical run streaming 14 → 17, with the CLI's environment and a write load on the source as the application role. */
async function streaming(rate: number, workers: number) {
  const s = await setup(14, 17);
  const env = { PGRELOCATE_SOURCE_URL: toUrl(s.source, { password: true }), PGRELOCATE_TARGET_URL: toUrl(s.target, { password: true }) };
  await sync(s.source, s.target, { jobs: 2, replicaIdentityFull: true });
  const load = new WriteLoad(s.source, { rate, workers, user: { name: APP_ROLE, password: s.app.password! } });
  return { ...s, env, load };
}

/** Poll `probe` every 25 ms until it is true; the time it took (ms). */
async function until(probe: () => Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (await probe().catch(() => false)) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

/** A cutover stopped after its switch, finished by the next one (resumed); the application on the target; every committed write there. */
async function finishResumed(env: Record<string, string>, load: WriteLoad, target: ConnInfo): Promise<void> {
  const done = await pgrelocate(['cutover', '--json'], env);
  assert.equal(done.exitCode, ExitCode.ok, done.stderr);
  assert.equal((JSON.parse(done.stdout) as { resumed: boolean }).resumed, true);
  load.switchTo(target);
  await sleep(500);
  await load.stop();
  const ledger = await load.ledger.check(target);
  assert.equal(ledger.ok, true, JSON.stringify(ledger).slice(0, 400));
}

/** pgrelocate's fence on the source, as the catalogs show it. */
async function fenceOnSource(source: ConnInfo): Promise<{ triggers: number; held: number; readOnly: boolean; schema: boolean }> {
  const [r] = await sql<{ triggers: number; held: number; ro: boolean; schema: boolean }>(
    source,
    `SELECT (SELECT count(*)::int FROM pg_trigger WHERE tgname LIKE 'pgrelocate\\_fence%') AS triggers,
            (SELECT count(*)::int FROM pg_stat_activity WHERE application_name = 'pgrelocate fence') AS held,
            EXISTS (SELECT 1 FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
                       AND array_to_string(setconfig, ',') LIKE '%default_transaction_read_only=on%') AS ro,
            EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'pgrelocate') AS schema`,
  );
  return { triggers: r!.triggers, held: r!.held, readOnly: r!.ro, schema: r!.schema };
}

/** A session of the target that holds `lock` until released: the apply worker (or DROP SUBSCRIPTION) waits on it. */
async function hold(target: ConnInfo, lock: string): Promise<pg.Client> {
  const c = await openClient(target);
  await c.query('BEGIN');
  await c.query(lock);
  return c;
}

describe('the cutover fence against clients that do not play along', function () {
  const canRun = async () => hasServer(14) && hasServer(17) && (await newestPgDump()) >= 14;

  it('a client that asks for READ WRITE loses no committed write; after the switch its writes are refused, naming the move; cleanup twice, then --unfence, lifts it', async function () {
    if (!(await canRun())) this.skip();
    const { source, target, app } = await setup(14, 17);
    await sync(source, target, { jobs: 2, replicaIdentityFull: true });
    // SET SESSION CHARACTERISTICS … READ WRITE and BEGIN READ WRITE: a read-only default alone lets this client write.
    const load = new WriteLoad(source, { rate: 200, workers: 3, readWrite: true, user: { name: APP_ROLE, password: app.password! } });
    await load.start();
    try {
      await sleep(800);
      const c = await cutover(source, target, { jobs: 2, verify: 'count' });
      assert.ok(c.fencedTables > 10, `${c.fencedTables} tables locked and proved held at the switch`);
      assert.ok(c.blackoutSeconds < 5, `blackout ${c.blackoutSeconds}s`);
      // The client keeps writing to the old source after the switch, and is refused there.
      await sleep(800);
      const summary = await load.stop();
      assert.ok(summary.committed > 100, `${summary.committed} committed`);
      assert.ok(summary.failed > 0, 'writes after the switch were refused');
      const ledger = await load.ledger.check(target);
      assert.equal(ledger.ok, true, `a committed write is missing on the target: ${JSON.stringify(ledger).slice(0, 400)}`);
    } finally {
      await load.stop();
    }
    // Whatever a session asks for — here a superuser, READ WRITE, TRUNCATE — the old source refuses, and says why.
    await assert.rejects(
      sql(source, `BEGIN READ WRITE; INSERT INTO public.schema_migrations (version) VALUES ('late'); COMMIT`),
      /cannot write to public\.schema_migrations: this database was moved by pgrelocate/,
    );
    await assert.rejects(sql(source, `BEGIN READ WRITE; TRUNCATE audit.events; COMMIT`), /moved by pgrelocate/);
    const fenced = await fenceOnSource(source);
    assert.ok(fenced.triggers > 20 && fenced.readOnly && fenced.held === 0, JSON.stringify(fenced));
    // Cleanup keeps the fence (and says so); a second cleanup, with the run's record gone, still finds it on the source.
    const first = await cleanup(source, target);
    assert.ok(
      first.some((x) => /kept: the write fence/.test(x)),
      first.join('\n'),
    );
    const second = await cleanup(source, target, { unfence: true });
    assert.ok(
      second.some((x) => /^write fence \(source: \d+ tables/.test(x)),
      second.join('\n'),
    );
    assert.deepEqual(await fenceOnSource(source), { triggers: 0, held: 0, readOnly: false, schema: false });
    await sql(app, `INSERT INTO public.schema_migrations (version) VALUES ('writable again')`);
  });

  it('killed inside the fence: the source is writable again at once and replication intact; past --max-blackout it rolls itself back; killed after the switch, cutover finishes it', async function () {
    if (!(await canRun())) this.skip();
    const { source, target, app, env, load } = await streaming(100, 2);
    await load.start();
    let blocker: pg.Client | null = null;
    try {
      // The target stops applying (a lock the apply worker waits for): the final LSN cannot arrive.
      blocker = await hold(target, 'LOCK TABLE app.orders IN SHARE MODE');

      // The guardrail: past --max-blackout the cutover rolls itself back.
      const guard = await pgrelocate(['cutover', '--max-blackout', '2', '--verify', 'none', '--quiet'], env);
      assert.equal(guard.exitCode, ExitCode.migrationFailed, guard.stderr);
      assert.match(guard.stderr, /reached the 2s guardrail during final-lsn; it was lifted and the cutover rolled back/);
      assert.deepEqual(await fenceOnSource(source), { triggers: 0, held: 0, readOnly: false, schema: false });
      await sql(app, `INSERT INTO public.schema_migrations (version) VALUES ('after the guardrail')`);

      // Killed inside the fence.
      const child = execa(process.execPath, [CLI, 'cutover', '--verify', 'none', '--quiet'], { env, reject: false });
      await until(async () => (await fenceOnSource(source)).held === 1, 60_000, 'the fence');
      await sleep(300);
      assert.equal((await fenceOnSource(source)).held, 1, 'still inside the fence (waiting for the final LSN)');
      const killedAt = Date.now();
      child.kill('SIGKILL');
      await child;
      // Recovery: the first write the application gets through on the source after the kill.
      let n = 0;
      const recovery = await until(
        () => sql(app, `INSERT INTO public.schema_migrations (version) VALUES ('after kill ${n++}')`).then(() => true),
        10_000,
        'a write on the source',
      );
      const recoveredMs = Date.now() - killedAt;
      assert.ok(recoveredMs < 2000, `writable ${recoveredMs} ms after the kill (first try after ${recovery} ms)`);
      process.stdout.write(
        `      guardrail: the source took writes again ${recoveredMs} ms after pgrelocate was killed inside the fence\n`,
      );
      const st = JSON.parse((await pgrelocate(['status', '--json'], env)).stdout) as { phase: string; sourceFence: { state: string } };
      assert.equal(st.phase, 'cutover');
      assert.equal(st.sourceFence.state, 'writable', 'status asks the source, which is not fenced');
      const text = await pgrelocate(['status'], env);
      assert.match(text.stdout, /stopped inside its write fence, which ended with its session: the source is writable/);
      // A new sync would restore over the target the run filled: refused, naming the command that takes it up.
      const resync = await pgrelocate(['sync', '--force', '--quiet'], env);
      assert.equal(resync.exitCode, ExitCode.migrationFailed, resync.stderr);
      assert.match(resync.stderr, /cutover stopped inside its write fence .*nothing was changed[\s\S]*Run pgrelocate cutover/);
      await blocker.query('ROLLBACK');
      await blocker.end();

      // Killed after the switch: DROP SUBSCRIPTION waits on a lock, the fence is already permanent.
      blocker = await hold(target, 'LOCK TABLE pg_catalog.pg_subscription IN EXCLUSIVE MODE');
      const child2 = execa(process.execPath, [CLI, 'cutover', '--verify', 'count', '--quiet'], { env, reject: false });
      await until(async () => (await fenceOnSource(source)).triggers > 0, 60_000, 'the switch');
      await sleep(300);
      child2.kill('SIGKILL');
      await child2;
      await blocker.query('ROLLBACK');
      await blocker.end();
      blocker = null;
      const st2 = JSON.parse((await pgrelocate(['status', '--json'], env)).stdout) as { phase: string; sourceFence: { state: string } };
      assert.equal(st2.phase, 'switched');
      assert.equal(st2.sourceFence.state, 'permanent');
      assert.match((await pgrelocate(['status'], env)).stdout, /source is FENCED.*Finish with: pgrelocate cutover/);
      await finishResumed(env, load, target);
      const subs = await sql(target, `SELECT 1 FROM pg_subscription WHERE subname LIKE 'pgrelocate%'`);
      assert.equal(subs.length, 0, 'replication removed by the resumed cutover');
      const cl = await pgrelocate(['cleanup', '--unfence'], env);
      assert.equal(cl.exitCode, ExitCode.ok, cl.stderr);
      assert.deepEqual(await fenceOnSource(source), { triggers: 0, held: 0, readOnly: false, schema: false });
    } finally {
      await blocker?.query('ROLLBACK').catch(() => undefined);
      await blocker?.end().catch(() => undefined);
      await load.stop();
    }
  });

  it('killed as each cutover step starts: before the switch the source takes writes again at once and replication goes on; after it the source stays fenced and the next cutover finishes; every committed write on the target', async function () {
    if (!(await canRun())) this.skip();
    const { source, target, env, load, app } = await streaming(100, 2);
    await load.start();
    const steps = [
      'schema-check',
      'analyze',
      'lag-gate',
      'verify',
      'matviews',
      'pre-copy',
      'fence',
      'final-lsn',
      'sequences',
      'unlogged-tables',
      'large-objects',
      'switch',
      'remove-replication',
      'database-settings',
    ];
    const seen: string[] = [];
    try {
      for (const step of steps) {
        // The CLI prints "→ <step>" as each step starts: killed there (or, for a step over in microseconds, in the next).
        const child = execa(process.execPath, [CLI, 'cutover', '--verify', 'count'], { env, reject: false, all: true });
        await new Promise<void>((resolve, reject) => {
          let out = '';
          child.all!.on('data', (d: Buffer) => {
            out += d.toString();
            if (out.includes(`→ ${step}\n`)) {
              child.kill('SIGKILL');
              resolve();
            }
          });
          child.on('exit', () => reject(new Error(`cutover ended before ${step}: ${out.slice(-600)}`)));
        });
        await child;
        const killedAt = Date.now();
        if ((await fenceOnSource(source)).triggers > 0) {
          const st = JSON.parse((await pgrelocate(['status', '--json'], env)).stdout) as { phase: string; sourceFence: { state: string } };
          assert.deepEqual(
            [st.phase, st.sourceFence.state],
            ['switched', 'permanent'],
            `killed at ${step}: switched, the source stays fenced`,
          );
          seen.push(`${step}: switched`);
          continue;
        }
        // Before the switch nothing of the fence outlives the process: the application writes again at once.
        let n = 0;
        await until(
          () => sql(app, `INSERT INTO public.schema_migrations (version) VALUES ('after a kill at ${step} ${n++}')`).then(() => true),
          5_000,
          `a write on the source after a kill at ${step}`,
        );
        const ms = Date.now() - killedAt;
        assert.ok(ms < 2000, `killed at ${step}: writable again after ${ms} ms`);
        const st = JSON.parse((await pgrelocate(['status', '--json'], env)).stdout) as { phase: string; sourceFence: { state: string } };
        assert.ok(['streaming', 'cutover'].includes(st.phase), `killed at ${step}: phase ${st.phase}`);
        assert.equal(st.sourceFence.state, 'writable', `killed at ${step}`);
        seen.push(`${step}: writable after ${ms} ms`);
      }
      process.stdout.write(`      ${seen.join('; ')}\n`);
      assert.ok(seen.some((x) => /: switched/.test(x)) && seen.some((x) => /^final-lsn: writable/.test(x)), seen.join('; '));
      await finishResumed(env, load, target);
      for (const step of ['analyze', 'final-lsn', 'switch']) {
        const rows = await sql(target, `SELECT 1 FROM public.schema_migrations WHERE version LIKE $1`, [`after a kill at ${step} %`]);
        if (seen.some((x) => x.startsWith(`${step}: writable`)))
          assert.ok(rows.length >= 1, `the write after the kill at ${step} reached the target`);
      }
      const cl = await pgrelocate(['cleanup', '--unfence'], env);
      assert.equal(cl.exitCode, ExitCode.ok, cl.stderr);
      assert.deepEqual(await fenceOnSource(source), { triggers: 0, held: 0, readOnly: false, schema: false });
    } finally {
      await load.stop();
    }
  });

  it('a transaction that keeps a table longer than the fence may wait: fence-busy names its session, nothing is fenced; once it ends, the cutover goes through', async function () {
    if (!(await canRun())) this.skip();
    const { source, target, app } = await setup(14, 17);
    await sync(source, target, { jobs: 2, replicaIdentityFull: true });
    // An application session left "idle in transaction" after a write: its lock outlives any wait the fence may make.
    const idle = await openClient(app);
    await idle.query(`BEGIN; UPDATE app.accounts SET name = name WHERE id = (SELECT min(id) FROM app.accounts)`);
    const pid = (await idle.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]!.p;
    try {
      const t0 = Date.now();
      await assert.rejects(cutover(source, target, { verify: 'none', maxBlackout: 2 }), (e: PgrelocateError) => {
        assert.equal(e.code, 'fence-busy', e.message);
        assert.match(e.message, new RegExp(`pid ${pid} ${APP_ROLE}\\b.*, idle in transaction, transaction open \\d+s, on app\\.accounts`));
        assert.match(e.fix ?? '', /End those transactions/);
        return true;
      });
      assert.ok(Date.now() - t0 < 10_000);
      assert.deepEqual(await fenceOnSource(source), { triggers: 0, held: 0, readOnly: false, schema: false });
      await sql(app, `INSERT INTO public.schema_migrations (version) VALUES ('writable while refused')`);
    } finally {
      await idle.query('ROLLBACK').catch(() => undefined);
      await idle.end();
    }
    const c = await cutover(source, target, { verify: 'count', maxBlackout: 2 });
    assert.ok(c.lockWaitSeconds < 1, `locks taken in ${c.lockWaitSeconds}s once nothing holds a table`);
  });

  it('unlogged tables and large objects are copied before the fence; inside it only what was written since (a superuser reads pg_largeobject)', async function () {
    if (!(await canRun())) this.skip();
    const { source, target } = await setup(14, 17);
    await prepareUncarried(source);
    await sync(source, target, { jobs: 2, replicaIdentityFull: true });
    const c = await cutover(source, target, { jobs: 2, verify: 'none', preHook: uncarriedHook(source) });
    await assertUncarried(source, target, c);
  });

  it('verify while streaming, under write load: at a pinned point it passes with writers held well under a second; a difference injected on the target is found and its table named', async function () {
    if (!(await canRun())) this.skip();
    const { source, target, env, load } = await streaming(150, 3);
    await load.start();
    try {
      await sleep(500);
      const ok = await pgrelocate(['verify', '--verify', 'checksum', '--json'], env);
      assert.equal(ok.exitCode, ExitCode.ok, ok.stdout.slice(0, 2000) + ok.stderr);
      const v = JSON.parse(ok.stdout) as { ok: boolean; stallSeconds: number; lsn: string; tables: unknown[] };
      assert.ok(v.ok && v.tables.length > 10 && /^[0-9A-F]+\/[0-9A-F]+$/.test(v.lsn), JSON.stringify(v).slice(0, 300));
      assert.ok(v.stallSeconds < 1, `writers waited ${v.stallSeconds}s`);
      // A row the target lost (the load only inserts events): found at the pinned point, its table named.
      await sql(target, `DELETE FROM audit.events WHERE id = (SELECT min(id) FROM audit.events)`);
      const bad = await pgrelocate(['verify', '--verify', 'count'], env);
      assert.equal(bad.exitCode, ExitCode.verifyFailed, bad.stderr);
      assert.match(bad.stdout, /pinned at the source's LSN/);
      assert.match(bad.stdout, /"audit"\."events".*rows differ/);
      assert.doesNotMatch(bad.stdout, /"app"\."orders".*differ/, 'the tables under load compare equal at the pinned point');
    } finally {
      await load.stop();
    }
    await cleanup(source, target);
  });

  it('rollback after the switch, under load: every write made on the new server is on the old one, which is writable again; the new one is fenced; cleanup leaves only that fence, which --unfence lifts', async function () {
    if (!(await canRun())) this.skip();
    const { source, target, app, env, load } = await streaming(150, 3);
    await load.start();
    try {
      await sleep(500);
      const c = await cutover(source, target, { jobs: 2, verify: 'count', rollback: true });
      assert.ok(c.blackoutSeconds < 5, `blackout ${c.blackoutSeconds}s`);
      // Through the CLI: `pgrelocate rollback --json`.
      await rollBackUnderLoad(source, target, load, app.password!, async () => {
        const r = await pgrelocate(['rollback', '--json'], env);
        assert.equal(r.exitCode, ExitCode.ok, r.stderr);
        return JSON.parse(r.stdout) as RollbackReport;
      });
    } finally {
      await load.stop();
    }
    const [seq] = await sql<{ s: string; t: string }>(source, `SELECT last_value::text AS s, '' AS t FROM audit.events_id_seq`);
    const [tseq] = await sql<{ t: string }>(target, `SELECT last_value::text AS t FROM audit.events_id_seq`);
    assert.ok(BigInt(seq!.s) >= BigInt(tseq!.t), 'sequences carried back');
    const st = JSON.parse((await pgrelocate(['status', '--json'], env)).stdout) as { phase: string; sourceFence: { state: string } };
    assert.deepEqual([st.phase, st.sourceFence.state], ['rolled-back', 'writable']);
    assert.doesNotMatch((await pgrelocate(['status'], env)).stdout, /source is FENCED/);
    const again = await pgrelocate(['rollback'], env);
    assert.equal(again.exitCode, ExitCode.usage);
    assert.match(again.stderr, /already rolled back/);
    const recut = await pgrelocate(['cutover'], env);
    assert.notEqual(recut.exitCode, ExitCode.ok);
    assert.match(recut.stderr, /cut over and rolled back; its replication is gone/);
    const cl = await pgrelocate(['cleanup'], env);
    assert.equal(cl.exitCode, ExitCode.ok, cl.stderr);
    const left = [
      ...(await sql<{ n: string }>(source, `SELECT 'subscription ' || subname AS n FROM pg_subscription WHERE subname LIKE 'pgrelocate%'`)),
      ...(await sql<{ n: string }>(
        target,
        `SELECT 'slot ' || slot_name AS n FROM pg_replication_slots WHERE slot_name LIKE 'pgrelocate%'`,
      )),
      ...(await sql<{ n: string }>(target, `SELECT 'publication ' || pubname AS n FROM pg_publication WHERE pubname LIKE 'pgrelocate%'`)),
      ...(await sql<{ n: string }>(
        source,
        `SELECT 'slot ' || slot_name AS n FROM pg_replication_slots WHERE slot_name LIKE 'pgrelocate%'`,
      )),
    ].map((x) => x.n);
    assert.deepEqual(left, []);
    // The new server stays fenced after a plain cleanup, as the source does after a cutover: said, and lifted by --unfence.
    assert.match(cl.stdout + cl.stderr, /kept: the write fence on the new server/);
    await assert.rejects(
      sql(
        { ...target, user: APP_ROLE, password: app.password! },
        `BEGIN READ WRITE; INSERT INTO public.schema_migrations (version) VALUES ('stray'); COMMIT`,
      ),
      /moved by pgrelocate/,
    );
    const after = await pgrelocate(['status'], env);
    assert.equal(after.exitCode, ExitCode.ok, after.stderr);
    const un = await pgrelocate(['cleanup', '--unfence'], env);
    assert.equal(un.exitCode, ExitCode.ok, un.stderr);
    assert.deepEqual(await fenceOnSource(target), { triggers: 0, held: 0, readOnly: false, schema: false }, 'the new server unfenced');
    await sql({ ...target, user: APP_ROLE, password: app.password! }, `INSERT INTO public.schema_migrations (version) VALUES ('writable')`);
  });
});
