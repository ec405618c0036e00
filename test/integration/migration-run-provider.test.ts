/**
 * The MigrationRun dynamic provider for real: serialized as the Pulumi SDK
 * serializes it, loaded in a fresh Node process the way the provider host
 * loads it, and driven create (sync) → diff → update (cutover) → delete
 * (cleanup) against real local servers, each call in its own process.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import { execa } from 'execa';
import { migrationRunProvider } from '../../components/migration-run';
import { applicationUrl, type RunInputs, type RunOutputs } from '../../components/run-driver';
import { toUrl } from '../../engine/conn';
import { loadSample } from '../../scripts/sample-db';
import { freshDatabase, hasServer, newestPgDump, server, sql } from '../helpers/servers';

describe('MigrationRun provider, serialized and run in fresh processes', function () {
  let dir: string;
  let providerFile: string;

  before(async function () {
    if (!hasServer(12) || !hasServer(17) || (await newestPgDump()) < 12) this.skip();
    dir = mkdtempSync(path.join(os.tmpdir(), 'pgrelocate-provider-'));
    const sf = await pulumi.runtime.serializeFunction(() => migrationRunProvider, { allowSecrets: true });
    providerFile = path.join(dir, 'provider.js');
    writeFileSync(providerFile, sf.text);
  });

  after(() => dir && rmSync(dir, { recursive: true, force: true }));

  const projectDir = path.resolve(__dirname, '..', '..', '..');

  /** One provider call in a fresh process, in the project directory (where Pulumi runs the provider host) or `cwd`. */
  async function call<T>(method: string, ...args: unknown[]): Promise<T> {
    return callIn<T>(projectDir, method, ...args);
  }
  async function callIn<T>(cwd: string, method: string, ...args: unknown[]): Promise<T> {
    const argsFile = path.join(dir, `${method}-args.json`);
    writeFileSync(argsFile, JSON.stringify(args), { mode: 0o600 });
    const harness = path.resolve(__dirname, '..', 'helpers', 'provider-harness.js');
    const r = await execa(process.execPath, [harness, providerFile, method, argsFile], { reject: false, cwd });
    if (cwd !== projectDir) return { exitCode: r.exitCode, stderr: String(r.stderr) } as T;
    assert.equal(r.exitCode, 0, `${method} failed: ${String(r.stderr)}`);
    return JSON.parse(String(r.stdout).trim().split('\n').pop()!) as T;
  }

  it('the serialized provider is small and captures no engine code', async function () {
    const sf = await pulumi.runtime.serializeFunction(() => migrationRunProvider, { allowSecrets: true });
    assert.ok(sf.text.length < 10_000, `${sf.text.length} characters`);
    assert.match(sf.text, /"dist\/components\/run-driver\.js"/);
    assert.doesNotMatch(sf.text, /CREATE_REPLICATION_SLOT|pg_dump/);
    // No path of this checkout: destroy from another checkout runs the same text.
    assert.ok(!sf.text.includes(projectDir), 'the serialized provider holds no absolute path');
    const elsewhere = await callIn<{ exitCode: number; stderr: string }>(os.tmpdir(), 'create', {});
    assert.notEqual(elsewhere.exitCode, 0);
    assert.match(
      elsewhere.stderr,
      /loads its driver from .*dist\/components\/run-driver\.js, which does not exist\. Fix: run pulumi in the pgrelocate project directory/,
    );
    assert.equal(sf.containsSecrets, false);
  });

  it('create syncs, update cuts over, delete removes every replication artefact', async function () {
    const source = await freshDatabase(await server(12), 'prov_src');
    await loadSample(source, { sizeBytes: 3e6 });
    const target = await freshDatabase(await server(17), 'prov_tgt');
    const inputs: RunInputs = {
      source: toUrl(source, { password: true }),
      target: toUrl(target, { password: true }),
      strategy: 'logical',
      phase: 'sync',
      options: { jobs: 2, replicaIdentityFull: true, verify: 'checksum' },
      mode: 'in-process',
    };
    const checked = await call<{ failures: unknown[] }>('check', {}, inputs);
    assert.deepEqual(checked.failures, []);
    const created = await call<{ id: string; outs: RunOutputs }>('create', inputs);
    assert.equal(created.outs.status, 'streaming');
    assert.ok(created.id && created.outs.runId === created.id);
    assert.ok((created.outs.copySeconds ?? -1) >= 0);

    // The application keeps writing while the stack sits in phase sync.
    await sql(source, `INSERT INTO public.schema_migrations (version) VALUES ('written-during-sync')`);

    const news: RunInputs = { ...inputs, phase: 'cutover' };
    const diff = await call<{ changes: boolean; replaces: string[] }>('diff', created.id, created.outs, news);
    assert.equal(diff.changes, true);
    assert.deepEqual(diff.replaces, [], 'a phase change is an update, never a replacement');
    const updated = await call<{ outs: RunOutputs }>('update', created.id, created.outs, news);
    assert.equal(updated.outs.status, 'done');
    assert.equal(updated.outs.verified, true);
    assert.ok((updated.outs.blackoutSeconds ?? 99) < 5, `blackout ${updated.outs.blackoutSeconds}`);
    assert.equal(updated.outs.newTargetUrl, applicationUrl(inputs.target));
    assert.ok(!new URL(updated.outs.newTargetUrl).password, 'the application gets no credentials of the run');
    assert.equal((await sql(target, `SELECT 1 FROM public.schema_migrations WHERE version = 'written-during-sync'`)).length, 1);

    // Going back is refused; a new source means a new run.
    const back = await call<{ replaces: string[] }>('diff', created.id, updated.outs, { ...news, source: inputs.source + '&x=1' });
    assert.deepEqual(back.replaces, ['source']);

    await call('delete', created.id, updated.outs);
    const left = [
      ...(await sql(source, `SELECT slot_name FROM pg_replication_slots WHERE database = current_database()`)),
      ...(await sql(source, `SELECT pubname FROM pg_publication`)),
      ...(await sql(
        target,
        `SELECT subname FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      )),
      ...(await sql(target, `SELECT nspname FROM pg_namespace WHERE nspname = 'pgrelocate'`)),
      ...(await sql(source, `SELECT relname FROM pg_class WHERE relreplident = 'f' AND relkind = 'r'`)),
    ];
    assert.deepEqual(left, [], 'no replication artefact left on either side');
    // The target's data stays.
    assert.ok((await sql<{ n: string }>(target, 'SELECT count(*)::text AS n FROM app.orders'))[0]!.n !== '0');
  });

  it('check refuses a cutover phase for dump-restore and a worker-less ssm run', async function () {
    const r = await call<{ failures: { property: string }[] }>(
      'check',
      {},
      {
        source: 'postgresql://a@h/db',
        target: 'postgresql://a@h/db2',
        strategy: 'dump-restore',
        phase: 'cutover',
        options: {},
        mode: 'ssm',
      },
    );
    assert.deepEqual(r.failures.map((f) => f.property).sort(), ['phase', 'workerInstanceId']);
  });
});
