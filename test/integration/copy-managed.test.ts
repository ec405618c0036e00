/**
 * `copy` as a managed-service user runs it. Its default verification: row
 * counts from the copy's own COPY command tags when nothing was written on
 * the source since its snapshot, and every table counted again on both sides
 * when something was (which then finds the rows the copy missed). A small
 * table's indexes, keys and ANALYZE go as one message, and each piece again on
 * its own when that message fails. A COPY cut off on either side fails with
 * that server's error, and leaves no session waiting behind it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { execa } from 'execa';
import { connect, withClient, type ConnInfo } from '../../engine/conn';
import { copyTables } from '../../engine/copy/copy';
import { preDataDeps } from '../../engine/copy/pre-data-stages';
import { inspect } from '../../engine/inspect';
import { libpqUrl } from '../../engine/tool-exec';
import { findClientTools } from '../../engine/tools';
import { copyOnce, sourceUnchanged } from '../../engine/copy/once';
import { PgrelocateError } from '../../engine/errors';
import { copyUnlogged } from '../../engine/streaming/cutover-steps';
import { startProfiledServer, type ProfiledServer } from '../../engine/local/profiles';
import type { RunEvent } from '../../engine/runner';
import { ExportedSnapshot } from '../../engine/streaming/snapshot';
import { hasServer, newestPgDump, sql } from '../helpers/servers';
import { DelayProxy } from '../../bench/topology';

/** Three tables: one split into key ranges (several COPY pairs to add up), one small without a key, one empty. */
async function load(source: ConnInfo): Promise<void> {
  await sql(
    source,
    `CREATE TABLE big (id int PRIMARY KEY, v text);
     INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, 40000) g;
     CREATE TABLE small (a text);
     INSERT INTO small VALUES ('a'), ('b');
     CREATE TABLE empty (id int);`,
  );
  // Settled now, so autovacuum has nothing to analyze during the copy (its ANALYZE is a write).
  await sql(source, 'VACUUM ANALYZE');
}

type StepDetail = { name: string; detail: { countedByCopy?: number; rows?: number; tables?: number } | null };

describe('copy as a managed-service user: verification by the COPY command tags, small tables built in one message', function () {
  let src: ProfiledServer;
  let dst: ProfiledServer;
  before(async function () {
    // pg_dump must read both servers for the schema comparison: both majors at or below this machine's client.
    if (!hasServer(12) || !hasServer(14) || (await newestPgDump()) < 14) this.skip();
    [src, dst] = await Promise.all([
      startProfiledServer('rds', 12, { source: true, name: 'rds12tags' }),
      startProfiledServer('rds', 14, { name: 'rds14tags' }),
    ]);
  });
  after(async function () {
    await Promise.all([src?.server.stop(), dst?.server.stop()]);
  });

  it('a still source: every table compared by the tags, parts added up, none read again', async function () {
    const source = await src.createDatabase('still');
    const target = await dst.createDatabase('still');
    await load(source);
    const events: RunEvent[] = [];
    const r = await copyOnce(source, target, { jobs: 2, splitBytes: 256 * 1024, skipGlobals: true }, (e) => void events.push(e));
    assert.ok((r.copy?.parts ?? 0) > 3, `big was split (${r.copy?.parts} parts)`);
    const v = (r.steps as readonly StepDetail[]).find((s) => s.name === 'verify')!;
    assert.deepEqual(v.detail, { mode: 'count', tables: 3, rows: 40002, countedByCopy: 3 });
    assert.ok(!events.some((e) => e.type === 'log' && /every table was counted again/.test(e.message)));
    const [n] = await sql<{ big: string; small: string }>(
      target,
      'SELECT (SELECT count(*) FROM big)::text AS big, (SELECT count(*) FROM small)::text AS small',
    );
    assert.deepEqual(n, { big: '40000', small: '2' });
  });

  it('a write on the source during the copy: verification counts every table again and names the one it missed', async function () {
    const source = await src.createDatabase('moving');
    const target = await dst.createDatabase('moving');
    await load(source);
    const writer: pg.Client = await connect(source, 'source');
    const events: RunEvent[] = [];
    let wrote: Promise<unknown> = Promise.resolve();
    try {
      const copy = copyOnce(source, target, { jobs: 2, splitBytes: 256 * 1024, skipGlobals: true }, (e) => {
        events.push(e);
        // After the snapshot, before verification: a row the copy cannot see.
        if (e.type === 'step' && e.name === 'schema-post-data' && e.status === 'start')
          wrote = writer.query(`INSERT INTO small VALUES ('c')`);
      });
      const err = await copy.then(
        () => null,
        (e: unknown) => e,
      );
      await wrote;
      assert.ok(err instanceof PgrelocateError, String(err));
      assert.equal(err.code, 'verify-failed');
      assert.match(err.message, /small.*rows differ \(source 3, target 2\)/);
      assert.ok(events.some((e) => e.type === 'log' && /every table was counted again/.test(e.message)));
      // Verification read on finishing's sessions; its failure still closes them.
      const pid = (writer as unknown as { processID: number }).processID;
      const left = await sql<{ n: string }>(
        src.admin(),
        `SELECT count(*)::text AS n FROM pg_stat_activity WHERE datname = 'moving' AND application_name LIKE 'pgrelocate%' AND pid <> ${pid}`,
      );
      assert.deepEqual(left, [{ n: '0' }]);
    } finally {
      await writer.end();
    }
  });

  it('large objects in batches: empty, one byte, exactly a head, a head and one byte, longer than a chunk, 150 small ones; owners and comments', async function () {
    const source = await src.createDatabase('los');
    const target = await dst.createDatabase('los');
    // The managed master creates the owner role on both sides and joins it, as it may.
    for (const c of [source, target])
      await sql(c, `DO $$ BEGIN CREATE ROLE lo_owner; EXCEPTION WHEN duplicate_object THEN NULL; END $$; GRANT lo_owner TO CURRENT_USER`);
    const head = 128 * 1024; // LO_HEAD in cutover-steps.ts
    await sql(
      source,
      `SELECT lo_from_bytea(1001, '');
       SELECT lo_from_bytea(1002, 'x');
       SELECT lo_from_bytea(1003, convert_to(repeat(md5('a'), ${head / 32}), 'UTF8'));
       SELECT lo_from_bytea(1004, convert_to(repeat(md5('b'), ${head / 32}) || 'z', 'UTF8'));
       SELECT lo_from_bytea(1005, convert_to(string_agg(md5(g::text), ''), 'UTF8')) FROM generate_series(1, 150000) g;
       SELECT lo_from_bytea(2000 + g, convert_to('small ' || g, 'UTF8')) FROM generate_series(1, 150) g;
       ALTER LARGE OBJECT 1004 OWNER TO lo_owner;
       COMMENT ON LARGE OBJECT 1005 IS 'longer than a chunk';
       COMMENT ON LARGE OBJECT 2077 IS 'small';`,
    );
    const r = await copyOnce(source, target, { jobs: 2, skipGlobals: true });
    const finish = (r.steps as readonly { name: string; detail: { largeObjects?: number } | null }[]).find((s) => s.name === 'finish')!;
    assert.equal(finish.detail?.largeObjects, 155);
    const read = (c: ConnInfo) =>
      sql<{ oid: string; size: number; md5: string; owner: string; comment: string | null }>(
        c,
        `SELECT oid::text, length(lo_get(oid)) AS size, md5(lo_get(oid)) AS md5, pg_get_userbyid(lomowner) = 'lo_owner' AS owner,
                obj_description(oid, 'pg_largeobject') AS comment
           FROM pg_largeobject_metadata ORDER BY oid`,
      );
    const [s, t] = await Promise.all([read(source), read(target)]);
    assert.equal(t.length, 155);
    assert.deepEqual(t, s);
    assert.deepEqual(
      s.slice(0, 5).map((x) => x.size),
      [0, 1, head, head + 1, 150000 * 32],
    );
    assert.deepEqual(
      t.filter((x) => x.owner || x.comment).map((x) => [x.oid, x.owner, x.comment]),
      [
        ['1004', true, null],
        ['1005', false, 'longer than a chunk'],
        ['2077', false, 'small'],
      ],
    );
  });

  it("pre-data refused on the target: the snapshot and the sessions opened beside its restore are closed, and the error is the restore's", async function () {
    const source = await src.createDatabase('early');
    const target = await dst.createDatabase('early');
    await load(source);
    // A grant to a role the target lacks (globals skipped): the pre-data restore fails.
    await sql(
      source,
      `DO $$ BEGIN CREATE ROLE only_on_source; EXCEPTION WHEN duplicate_object THEN NULL; END $$; GRANT SELECT ON big TO only_on_source`,
    );
    const err = await copyOnce(source, target, { jobs: 2, skipGlobals: true }).then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(err instanceof PgrelocateError, String(err));
    assert.match(err.message, /only_on_source/);
    const left = await sql<{ a: string; n: string }>(
      src.admin(),
      `SELECT application_name AS a, count(*)::text AS n FROM pg_stat_activity WHERE datname = 'early' AND application_name LIKE 'pgrelocate%' GROUP BY 1`,
    );
    assert.deepEqual(left, []);
  });

  it('a preflight refused after the schema dump began: pg_dump is ended before the error, and its scratch directory is gone', async function () {
    const source = await src.createDatabase('refused');
    const target = await dst.createDatabase('refused');
    await load(source);
    await sql(target, 'CREATE TABLE already_here (id int)'); // the refusal: a target that is not empty
    // The source 100 ms away and the target 400 ms away: the source is known (and the dump begun) seconds before the
    // target's answers refuse the run, and pg_dump's hundred round trips would go on for ten seconds more.
    const [sp, tp] = await Promise.all([DelayProxy.start('127.0.0.1', source.port, 100), DelayProxy.start('127.0.0.1', target.port, 400)]);
    const workDir = mkdtempSync(path.join(os.tmpdir(), 'pgrelocate-refused-'));
    // pg_dump (application_name pgrelocate, like every tool of a run) holds its transaction open between its queries;
    // the preflight's reads hold none.
    const dumps = (): Promise<{ n: string }[]> =>
      sql<{ n: string }>(
        src.admin(),
        `SELECT count(*)::text AS n FROM pg_stat_activity WHERE datname = 'refused' AND application_name = 'pgrelocate' AND xact_start IS NOT NULL`,
      );
    const sessions = (): Promise<{ n: string }[]> =>
      sql<{ n: string }>(
        src.admin(),
        `SELECT count(*)::text AS n FROM pg_stat_activity WHERE datname = 'refused' AND application_name LIKE 'pgrelocate%'`,
      );
    try {
      let seen = 0;
      let polling = true;
      const poll = (async () => {
        while (polling) {
          seen = Math.max(seen, Number((await dumps())[0]!.n));
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      const started = Date.now();
      const err = await copyOnce({ ...source, port: sp.port }, { ...target, port: tp.port }, { jobs: 2, skipGlobals: true, workDir }).then(
        () => null,
        (e: unknown) => e,
      );
      const seconds = (Date.now() - started) / 1000;
      polling = false;
      await poll;
      assert.ok(err instanceof PgrelocateError, String(err));
      assert.equal(err.code, 'check-failed');
      assert.match(err.message, /not empty/);
      assert.equal(seen, 1, 'the schema dump had begun before the refusal');
      // Its backend ends when pg_dump's connection closes, which the proxy passes on within its delay.
      let left = '1';
      for (let i = 0; i < 20 && left !== '0'; i++) {
        left = (await sessions())[0]!.n;
        if (left !== '0') await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(left, '0', `a session still connected ${seconds.toFixed(1)} s after the copy was started`);
      assert.deepEqual(readdirSync(workDir), []);
      const [t] = await sql<{ n: string }>(target, `SELECT count(*)::text AS n FROM pg_tables WHERE schemaname = 'public'`);
      assert.equal(t!.n, '1', 'nothing was created on the target');
    } finally {
      sp.stop();
      tp.stop();
      rmSync(workDir, { recursive: true, force: true });
    }
  });

  it("post-data refused on the target: the sessions finishing opened beside it are closed, and the error is the index build's", async function () {
    const source = await src.createDatabase('late');
    const target = await dst.createDatabase('late');
    // An index whose function fails on the target's major only: every attempt to build it there fails.
    await sql(
      source,
      `CREATE FUNCTION only_before_14(i int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS
         $$ BEGIN IF current_setting('server_version_num')::int >= 140000 THEN RAISE EXCEPTION 'refused on 14'; END IF; RETURN i; END $$;
       CREATE SEQUENCE s; SELECT nextval('s');
       CREATE TABLE t (id int PRIMARY KEY);
       INSERT INTO t SELECT generate_series(1, 100);
       CREATE INDEX t_refused ON t (only_before_14(id))`,
    );
    const err = await copyOnce(source, target, { jobs: 2, skipGlobals: true }).then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(err instanceof PgrelocateError, String(err));
    assert.match(err.message, /refused on 14/);
    for (const [side, admin] of [
      ['source', src.admin()],
      ['target', dst.admin()],
    ] as const) {
      const left = await sql<{ a: string }>(
        admin,
        `SELECT application_name AS a FROM pg_stat_activity WHERE datname = 'late' AND application_name LIKE 'pgrelocate%'`,
      );
      assert.deepEqual(left, [], `no session left on the ${side}`);
    }
  });

  it("the proof of stillness: a write in another database of the source's server, or an ANALYZE, counts as a change", async function () {
    const source = await src.createDatabase('proof');
    const other = await src.createDatabase('proof_other');
    await sql(other, 'CREATE TABLE t (a int)');
    const snap = await ExportedSnapshot.plain(source);
    try {
      assert.ok(snap.xids, 'a plain snapshot carries its transaction ids');
      assert.equal(await sourceUnchanged(source, snap.xids), true, 'nothing written yet');
      await sql(other, 'INSERT INTO t VALUES (1)');
      assert.equal(await sourceUnchanged(source, snap.xids), false, 'a write elsewhere on the server');
    } finally {
      await snap.close();
    }
    const again = await ExportedSnapshot.plain(source);
    try {
      await sql(other, 'ANALYZE t');
      assert.equal(await sourceUnchanged(source, again.xids!), false, 'ANALYZE writes pg_statistic');
    } finally {
      await again.close();
    }
  });

  it("a COPY cut off mid-stream on either side fails with that server's error; nothing of it stays on the target", async function () {
    const source = await src.createDatabase('cutoff');
    const target = await dst.createDatabase('cutoff');
    // About 25 MB: more than the sockets between hold, so the source is still sending when it is cancelled.
    await sql(
      source,
      `CREATE TABLE big (id int PRIMARY KEY, v text); INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, 200000) g`,
    );
    const [big] = (await inspect(source, 'source')).database.tables;
    const copy = async (): Promise<unknown> => {
      const snap = await ExportedSnapshot.plain(source);
      try {
        return await copyTables(
          source,
          target,
          snap.name,
          [big!],
          { jobs: 1, splitBytes: 1024 ** 3, sourceVersionNum: 120000 },
          () => undefined,
        ).then(
          () => null,
          (e: unknown) => e,
        );
      } finally {
        await snap.close();
      }
    };
    const count = async (): Promise<string> => (await sql<{ n: string }>(target, 'SELECT count(*)::text AS n FROM big'))[0]!.n;

    // The source: its COPY blocked on a full socket (the target's COPY waits on a lock), cancelled, then let go. A
    // backend acts on a cancel at its next row, so the error comes between rows, after data the relay has passed on.
    await sql(target, 'CREATE TABLE big (id int PRIMARY KEY, v text)');
    const holder = await connect(target, 'target');
    const watcher = await connect(source, 'source');
    try {
      await holder.query('BEGIN; LOCK TABLE big');
      const failed = copy();
      let pid: number | undefined;
      for (let i = 0; i < 600 && pid === undefined; i++) {
        const r = await watcher.query<{ pid: number }>(
          `SELECT pid FROM pg_stat_activity WHERE query LIKE 'COPY%TO STDOUT%' AND wait_event = 'ClientWrite' AND pid <> pg_backend_pid()`,
        );
        pid = r.rows[0]?.pid;
        if (pid === undefined) await new Promise((res) => setTimeout(res, 50));
      }
      assert.ok(pid, "the source's COPY waits on its socket");
      await watcher.query('SELECT pg_cancel_backend($1)', [pid]);
      await holder.query('COMMIT');
      const err = await failed;
      assert.ok(err instanceof Error, String(err));
      assert.match(err.message, /canceling statement due to user request/);
      assert.equal(await count(), '0');
    } finally {
      await holder.end();
      await watcher.end();
    }

    // The target: a row its CHECK refuses, three quarters in.
    await sql(target, 'DROP TABLE big; CREATE TABLE big (id int PRIMARY KEY CHECK (id < 150000), v text)');
    const err = await copy();
    assert.ok(err instanceof Error, String(err));
    assert.match(err.message, /violates check constraint/);
    assert.equal(await count(), '0');
    // The cutover's resync of unlogged tables runs on the cutover's own sessions, which must stay usable (the fence
    // is lifted through them): after the target's refusal, the source's session reads the rest of its COPY and drops it.
    const s = await connect(source, 'source');
    const d = await connect(target, 'target');
    try {
      const resync = await copyUnlogged(s, d, ['big']).then(
        () => null,
        (e: unknown) => e,
      );
      assert.match(String(resync), /violates check constraint/);
      const within = <T>(p: Promise<T>): Promise<T> =>
        Promise.race([
          p,
          new Promise<T>((_, reject) => setTimeout(() => reject(new Error('the session hangs after the failed COPY')), 20000)),
        ]);
      assert.equal((await within(s.query<{ n: number }>('SELECT 1 AS n'))).rows[0]!.n, 1);
      assert.equal((await within(d.query<{ n: number }>('SELECT 1 AS n'))).rows[0]!.n, 1);
    } finally {
      await Promise.all([s.end(), d.end()]);
    }
    // Nothing left behind on either side: no session of the copy still open.
    const left = await sql<{ n: string }>(
      source,
      `SELECT count(*)::text AS n FROM pg_stat_activity WHERE application_name = 'pgrelocate-copy'`,
    );
    assert.equal(left[0]!.n, '0');
  });

  it('a small table whose batched post-data fails once: nothing of the batch stays, each piece runs again on its own', async function () {
    const source = await src.createDatabase('flaky');
    const target = await dst.createDatabase('flaky');
    // An index expression that fails on its sequence's first value: on the target, the first attempt (the
    // batch) fails and rolls back, and nextval, which no rollback undoes, lets the second attempt pass.
    await sql(
      source,
      `CREATE SEQUENCE flaky;
       CREATE FUNCTION flaky_key(i int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS
         $$ BEGIN IF nextval('flaky') = 1 THEN RAISE EXCEPTION 'first call fails'; END IF; RETURN i; END $$;
       SELECT nextval('flaky');
       CREATE TABLE t (id int PRIMARY KEY, v text UNIQUE);
       INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g;
       CREATE INDEX t_flaky ON t (flaky_key(id))`,
    );
    const events: RunEvent[] = [];
    await copyOnce(source, target, { jobs: 2, skipGlobals: true }, (e) => void events.push(e));
    const built = await sql<{ i: string; valid: boolean }>(
      target,
      `SELECT indexrelid::regclass::text AS i, indisvalid AS valid FROM pg_index WHERE indrelid = 't'::regclass ORDER BY 1`,
    );
    assert.deepEqual(built, [
      { i: 't_flaky', valid: true },
      { i: 't_pkey', valid: true },
      { i: 't_v_key', valid: true },
    ]);
    const keys = await sql<{ c: string }>(target, `SELECT conname AS c FROM pg_constraint WHERE conrelid = 't'::regclass ORDER BY 1`);
    assert.deepEqual(
      keys.map((k) => k.c),
      ['t_pkey', 't_v_key'],
    );
    const [stats] = await sql<{ n: string }>(target, `SELECT count(*)::text AS n FROM pg_stats WHERE tablename = 't'`);
    assert.ok(Number(stats!.n) >= 2, 'analyzed');
    assert.ok(!events.some((e) => e.type === 'log' && e.level === 'warn'), 'no warning: the second attempt passed');
  });
  it("pre-data over two sessions: tables that depend on no other relation at once, the others in the archive's order; the same schema on both sides", async function () {
    const source = await src.createDatabase('stages');
    const target = await dst.createDatabase('stages');
    await sql(
      source,
      `CREATE SCHEMA app;
       CREATE TYPE app.mood AS ENUM ('ok', 'bad');
       CREATE DOMAIN app.amount AS numeric(12, 2) CHECK (VALUE >= 0);
       CREATE TYPE app.pair AS (a int, b text);
       CREATE SEQUENCE app.shared;
       DO $$ BEGIN FOR i IN 1..120 LOOP
         EXECUTE format('CREATE TABLE app.t%s (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, s serial, m app.mood, amt app.amount, p app.pair, note text CHECK (note <> ''''))', i);
         EXECUTE format('COMMENT ON TABLE app.t%s IS %L', i, 'table ' || i);
         EXECUTE format('COMMENT ON COLUMN app.t%s.note IS %L', i, 'note ' || i);
         EXECUTE format('GRANT SELECT ON app.t%s TO PUBLIC', i);
         EXECUTE format('INSERT INTO app.t%s (m, amt, p, note) VALUES (''ok'', 1.5, ROW(1, ''x''), ''n'')', i);
       END LOOP; END $$;
       -- Each of these depends on another relation, so it waits for the archive's order.
       CREATE TABLE app.parent (id int, v text);
       CREATE TABLE app.child (extra int) INHERITS (app.parent);
       CREATE TABLE app.events (id int, at date NOT NULL) PARTITION BY RANGE (at);
       CREATE TABLE app.events_2026 PARTITION OF app.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
       CREATE TABLE app.holder (id int, one app.t1, many app.t2[]);
       CREATE TABLE app.typed OF app.pair;
       CREATE DOMAIN app.t3_row AS app.t3;
       CREATE TABLE app.dom_holder (id int, d app.t3_row);
       CREATE VIEW app.v AS SELECT id, note FROM app.t4;
       CREATE TABLE app.view_row (r app.v);
       CREATE TABLE app.uses_shared (id bigint DEFAULT nextval('app.shared'));
       ALTER SEQUENCE app.shared OWNED BY app.t5.id;
       INSERT INTO app.child VALUES (1, 'c', 2);
       INSERT INTO app.events VALUES (1, '2026-05-01');
       INSERT INTO app.holder SELECT 1, t1, ARRAY[t2] FROM app.t1, app.t2;
       INSERT INTO app.uses_shared DEFAULT VALUES;`,
    );
    await sql(source, 'VACUUM ANALYZE');
    const deps = await withClient(source, 'source', preDataDeps);
    const others = await sql<{ n: string }>(
      source,
      `SELECT relname AS n FROM pg_class WHERE oid = ANY($1::oid[]) AND relname !~ '^t[0-9]+$' ORDER BY 1`,
      [[...deps.tables]],
    );
    // Of the rest, only those that depend on no other relation: a partitioned parent, an inheritance parent,
    // a typed table of a standalone composite type.
    assert.deepEqual(
      others.map((x) => x.n),
      ['events', 'parent', 'typed'],
    );
    assert.equal(deps.tables.size, 123);
    const events: RunEvent[] = [];
    await copyOnce(source, target, { jobs: 2, skipGlobals: true }, (e) => void events.push(e));
    assert.ok(
      events.some((e) => e.type === 'log' && /^schema pre-data: \d+ tables created over 2 sessions at once$/.test(e.message)),
      'pre-data ran in stages',
    );
    assert.deepEqual(await schemaDump(target), await schemaDump(source));
  });
});

/** The schema as pg_dump prints it, without comment lines (versions, dates) or \restrict keys (random). */
async function schemaDump(c: ConnInfo): Promise<string[]> {
  const tools = (await findClientTools())[0]!;
  const r = await execa(tools.pgDump, ['--schema-only', '--exclude-schema=pgrelocate', '-d', libpqUrl(c)], {
    env: { PGPASSWORD: c.password ?? '' },
  });
  return r.stdout.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('--') && !/^\\(un)?restrict /.test(l));
}
