/**
 * One pgrelocate at a time on a target, and what `status` shows from a second
 * terminal: the process working on the run, a run whose process died with
 * the command that continues it. Through the CLI, as users run it.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { toUrl, type ConnInfo } from '../../engine/conn';
import { ExitCode } from '../../engine/errors';
import type { StepProgress } from '../../engine/runner';
import { readRun } from '../../engine/state';
import { loadSample } from '../../scripts/sample-db';
import { pgrelocate } from '../helpers/cli';
import { freshDatabase, hasServer, newestPgDump, server, sql } from '../helpers/servers';

const CLI = path.resolve(__dirname, '..', '..', 'scripts', 'cli.js');

function start(args: readonly string[], env: Record<string, string>): ResultPromise<{ reject: false }> {
  return execa(process.execPath, [CLI, ...args], { reject: false, env, timeout: 300_000 }) as ResultPromise<{ reject: false }>;
}

/** Poll until `ok` returns true (or fail after `ms`). */
async function until(what: string, ok: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A source with a sample large enough that its copy takes seconds, an empty target, and the CLI's environment for them. */
async function pair(): Promise<{ source: ConnInfo; target: ConnInfo; env: Record<string, string> }> {
  const source = await freshDatabase(await server(14), 'lock_src');
  await loadSample(source, { sizeBytes: 40e6 });
  const target = await freshDatabase(await server(17), 'lock_tgt');
  return {
    source,
    target,
    env: { PGRELOCATE_SOURCE_URL: toUrl(source, { password: true }), PGRELOCATE_TARGET_URL: toUrl(target, { password: true }) },
  };
}

describe('one run at a time, and status from a second terminal', function () {
  before(async function () {
    if (!hasServer(14) || !hasServer(17) || (await newestPgDump()) < 14) this.skip();
  });

  it('a second sync or cutover is refused while a sync runs, naming it; status shows it; the first ends streaming', async function () {
    const { source, target, env } = await pair();
    const first = start(['sync', '--jobs', '1', '--quiet', '--replica-identity-full'], env);
    await until('the first sync to hold the run', async () => (await readRun(target).catch(() => null))?.holder != null);
    const t0 = Date.now();
    const second = await pgrelocate(['sync', '--jobs', '2', '--quiet', '--replica-identity-full'], env);
    assert.equal(second.exitCode, ExitCode.busy, second.stderr);
    assert.match(second.stderr, new RegExp(`Another pgrelocate is working on this target \\(pgrelocate sync pid ${first.pid} on `));
    assert.match(second.stderr, /changed nothing/);
    const cut = await pgrelocate(['cutover', '--quiet'], env);
    assert.equal(cut.exitCode, ExitCode.busy, cut.stderr);
    assert.ok(Date.now() - t0 < 30_000, 'refused at once');
    const st = await pgrelocate(['status'], env);
    assert.equal(st.exitCode, 0, st.stderr);
    assert.match(st.stdout, new RegExp(`in progress: pgrelocate sync pid ${first.pid}`));
    // The copy's progress, as a second terminal reads it from the state: bytes, total, rate.
    let seen: StepProgress | null = null;
    await until('copy progress in the state', async () => {
      const copy = (await readRun(target).catch(() => null))?.steps.find((x) => x.name === 'copy');
      if (copy?.status === 'running' && copy.progress && copy.progress.done > 0) seen = copy.progress;
      return seen !== null || copy?.status === 'done';
    });
    assert.ok(seen, 'a running copy recorded its progress');
    const p = seen as StepProgress;
    assert.equal(p.unit, 'bytes');
    assert.ok(p.total >= p.done && p.rate > 0, JSON.stringify(p));
    assert.match(p.note ?? '', /^\d+\/\d+ tables; /, 'tables done so far');
    const r = await first;
    assert.equal(r.exitCode, 0, String(r.stderr));
    const after = await pgrelocate(['status'], env);
    assert.match(after.stdout, /streaming: the servers replicate on their own/);
    // Only one slot: the refused sync created nothing.
    const slots = await sql<{ n: string }>(
      source,
      `SELECT count(*)::text AS n FROM pg_replication_slots WHERE database = current_database()`,
    );
    assert.equal(slots[0]!.n, '1');
    const c = await pgrelocate(['cutover', '--quiet'], env);
    assert.equal(c.exitCode, 0, c.stderr);
    const cl = await pgrelocate(['cleanup'], env);
    assert.equal(cl.exitCode, 0, cl.stderr);
  });

  it('a sync killed during its copy: status says no process works on it and how to continue; the next sync resumes', async function () {
    const { source, target: t, env: env2 } = await pair();
    const first = start(['sync', '--jobs', '2', '--quiet', '--replica-identity-full'], env2);
    await until('the copy to start', async () => {
      const run = await readRun(t).catch(() => null);
      return run?.steps.some((s) => s.name === 'copy' && s.status === 'running') ?? false;
    });
    first.kill('SIGKILL');
    await first;
    const st = await pgrelocate(['status'], env2);
    assert.match(
      st.stdout,
      /no pgrelocate process is working on this run: the one that ran it stopped\. Continue with: pgrelocate sync \(resumes it\)/,
    );
    const resumed = await pgrelocate(['sync', '--jobs', '2', '--quiet', '--replica-identity-full'], env2);
    assert.equal(resumed.exitCode, 0, resumed.stderr);
    const c = await pgrelocate(['cleanup'], env2);
    assert.equal(c.exitCode, 0, c.stderr);
    const slots = await sql<{ n: string }>(
      source,
      `SELECT count(*)::text AS n FROM pg_replication_slots WHERE database = current_database()`,
    );
    assert.equal(slots[0]!.n, '0', 'cleanup removed the slot');
  });
});
