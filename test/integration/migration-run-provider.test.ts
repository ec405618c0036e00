/**
 * The MigrationRun provider through the real provider host: the serialized
 * text the SDK makes is handed to @pulumi/pulumi's `cmd/dynamic-provider`,
 * started as the engine starts it, and driven over gRPC as the engine drives
 * it — GetPluginInfo, Configure, Check and Diff (with a preview's unknown
 * values), Create (sync), Update (cutover, verified; then rollback), Delete (cleanup) —
 * against real local servers.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import { migrationRunProvider } from '../../components/migration-run';
import { applicationUrl, type RunInputs, type RunOutputs } from '../../components/run-driver';
import { toUrl } from '../../engine/conn';
import { startServer } from '../../engine/local/cluster';
import { loadSample, loadSideDatabases } from '../../scripts/sample-db';
import { ProviderHost, UNKNOWN } from '../helpers/provider-host';
import { freshDatabase, hasServer, newestPgDump, server, sql } from '../helpers/servers';

const URN = 'urn:pulumi:test::pgrelocate::pulumi-nodejs:dynamic:Resource::run';
const projectDir = path.resolve(__dirname, '..', '..', '..');

describe('MigrationRun provider through the real provider host (gRPC)', function () {
  let providerText: string;
  let host: ProviderHost;

  before(async function () {
    if (!hasServer(12) || !hasServer(17) || (await newestPgDump()) < 12) this.skip();
    providerText = (await pulumi.runtime.serializeFunction(() => migrationRunProvider, { allowSecrets: true })).text;
    host = await ProviderHost.start(projectDir);
    const sdk = JSON.parse(readFileSync(require.resolve('@pulumi/pulumi/package.json'), 'utf8')) as { version: string };
    assert.equal(await host.getPluginInfo(), sdk.version, "the host is the SDK's own");
    assert.deepEqual(await host.configure(), { acceptSecrets: false }, 'the host takes secrets as plain values (the engine unwraps them)');
  });

  after(() => host?.stop());

  it('the serialized provider is small, captures no engine code and no path of this checkout', async function () {
    assert.ok(providerText.length < 10_000, `${providerText.length} characters`);
    assert.match(providerText, /"dist\/components\/run-driver\.js"/);
    assert.doesNotMatch(providerText, /CREATE_REPLICATION_SLOT|pg_dump/);
    assert.ok(!providerText.includes(projectDir), 'destroy from another checkout runs the same text');
    // A host started elsewhere than a project directory says where the driver should be, through the engine's error.
    const stray = await ProviderHost.start(os.tmpdir());
    try {
      await assert.rejects(
        stray.create(URN, {
          __provider: providerText,
          source: 's',
          target: 't',
          strategy: 'logical',
          phase: 'sync',
          options: {},
          mode: 'in-process',
        }),
        /loads its driver from .*dist\/components\/run-driver\.js, which does not exist\. Fix: run pulumi in the pgrelocate project directory/,
      );
    } finally {
      stray.stop();
    }
  });

  it('preview, create = sync, diff on phase = update, update = cutover verified, update = rollback, delete = cleanup; which changes replace the run', async function () {
    this.timeout(600_000);
    const source = await freshDatabase(await server(12), 'prov_src');
    await loadSample(source, { sizeBytes: 3e6 });
    const target = await freshDatabase(await server(17), 'prov_tgt');
    const inputs: RunInputs = {
      source: toUrl(source, { password: true }),
      target: toUrl(target, { password: true }),
      strategy: 'logical',
      phase: 'sync',
      options: { jobs: 2, replicaIdentityFull: true, verify: 'checksum', rollback: true },
      mode: 'in-process',
    };
    const news = { ...inputs, __provider: providerText };

    // Preview of the first up: the target's URL is not known yet (its instance does not exist).
    const preview = await host.check(URN, {}, { ...news, target: UNKNOWN });
    assert.deepEqual(preview.failures, []);
    const checked = await host.check(URN, {}, news);
    assert.deepEqual(checked.failures, []);

    const created = await host.create(URN, checked.inputs);
    const outs = created.properties as unknown as RunOutputs & { __provider: string };
    assert.equal(outs.status, 'streaming');
    assert.ok(created.id && outs.runId === created.id);
    assert.ok((outs.copySeconds ?? -1) >= 0);
    assert.equal(outs.__provider, providerText, 'the state keeps the provider text destroy will run');

    // The application keeps writing while the stack sits in phase sync.
    await sql(source, `INSERT INTO public.schema_migrations (version) VALUES ('written-during-sync')`);

    // Which changes are an update and which a new run, as the engine asks.
    const cutover = { ...news, phase: 'cutover' };
    assert.deepEqual(await host.diff(URN, created.id, outs, news), { changes: 'none', replaces: [] });
    assert.deepEqual(await host.diff(URN, created.id, outs, cutover), { changes: 'some', replaces: [] }, 'a phase change is an update');
    assert.deepEqual(await host.diff(URN, created.id, outs, { ...news, options: { ...inputs.options, jobs: 4 } }), {
      changes: 'some',
      replaces: [],
    });
    assert.deepEqual(
      await host.diff(URN, created.id, outs, { ...news, workerInstanceId: UNKNOWN }),
      { changes: 'some', replaces: [] },
      'a new worker carries the run on',
    );
    assert.deepEqual((await host.diff(URN, created.id, outs, { ...news, source: inputs.source + '&x=1' })).replaces, ['source']);
    assert.deepEqual((await host.diff(URN, created.id, outs, { ...news, strategy: 'pglogical' })).replaces, ['strategy']);
    assert.deepEqual(
      (await host.diff(URN, created.id, outs, { ...news, target: UNKNOWN })).replaces,
      ['target'],
      'an unknown target may be another one',
    );
    const refused = await host.check(URN, outs, { ...news, strategy: 'dump-restore', phase: 'cutover' });
    assert.deepEqual(
      refused.failures.map((f) => f.property),
      ['phase'],
    );

    const updated = (await host.update(URN, created.id, outs, cutover)) as unknown as RunOutputs;
    assert.equal(updated.status, 'done');
    assert.equal(updated.verified, true);
    assert.ok((updated.blackoutSeconds ?? 99) < 5, `blackout ${updated.blackoutSeconds}`);
    assert.equal(updated.newTargetUrl, applicationUrl(inputs.target));
    assert.ok(!new URL(updated.newTargetUrl).password, 'the application gets no credentials of the run');
    assert.equal((await sql(target, `SELECT 1 FROM public.schema_migrations WHERE version = 'written-during-sync'`)).length, 1);
    // Going back to sync is refused by the provider, through the engine's error.
    await assert.rejects(host.update(URN, created.id, updated as unknown as Record<string, unknown>, news), /cannot go back to sync/);

    // phase rollback: only after a cutover that armed the way back; then the application goes back to the source.
    const rollback = { ...news, phase: 'rollback' };
    assert.deepEqual(
      (await host.check(URN, {}, rollback)).failures.map((f) => f.property),
      ['phase'],
      'a new run has nothing to roll back',
    );
    const unarmed = { ...updated, options: { ...inputs.options, rollback: false } } as unknown as Record<string, unknown>;
    assert.match((await host.check(URN, unarmed, rollback)).failures[0]?.reason ?? '', /cut over without options\.rollback/);
    assert.deepEqual((await host.check(URN, updated as unknown as Record<string, unknown>, rollback)).failures, []);
    await sql({ ...target }, `INSERT INTO public.schema_migrations (version) VALUES ('written-on-the-new-server')`);
    const back = (await host.update(URN, created.id, updated as unknown as Record<string, unknown>, rollback)) as unknown as RunOutputs;
    assert.equal(back.status, 'rolled-back');
    assert.equal(back.newTargetUrl, applicationUrl(inputs.source), 'the application goes back to the source');
    assert.equal((await sql(source, `SELECT 1 FROM public.schema_migrations WHERE version = 'written-on-the-new-server'`)).length, 1);
    await sql(source, `INSERT INTO public.schema_migrations (version) VALUES ('the source is writable again')`);
    await assert.rejects(
      host.update(URN, created.id, back as unknown as Record<string, unknown>, cutover),
      /rolled back cannot be cut over again/,
    );

    await host.delete(URN, created.id, back as unknown as Record<string, unknown>);
    const left = [
      ...(await sql(source, `SELECT slot_name FROM pg_replication_slots WHERE database = current_database()`)),
      ...(await sql(source, `SELECT pubname FROM pg_publication`)),
      ...(await sql(
        target,
        `SELECT subname FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      )),
      ...(await sql(target, `SELECT relname FROM pg_class WHERE relnamespace = 'pgrelocate'::regnamespace`)),
      ...(await sql(source, `SELECT relname FROM pg_class WHERE relreplident = 'f' AND relkind = 'r'`)),
    ];
    assert.deepEqual(left, [], 'no replication artefact and no state left on either side');
    // Rolled back, the new server stays fenced (as a source does after a cutover): a stray application instance is refused there.
    await assert.rejects(
      sql(target, `BEGIN READ WRITE; INSERT INTO public.schema_migrations (version) VALUES ('stray'); COMMIT`),
      /moved by pgrelocate/,
    );
    // The target's data stays.
    assert.ok((await sql<{ n: string }>(target, 'SELECT count(*)::text AS n FROM app.orders'))[0]!.n !== '0');
  });

  it('pgrelocate:databases: create syncs each named database (created on the target), update cuts them over as one, delete cleans up each; another set is a new run, and there is no rollback phase', async function () {
    this.timeout(600_000);
    const src = await startServer({ major: 14, name: 'prov-cluster-src' });
    const dst = await startServer({ major: 17, name: 'prov-cluster-dst' });
    try {
      await loadSideDatabases(src.conn());
      const inputs: RunInputs = {
        source: toUrl(src.conn('postgres'), { password: true }),
        target: toUrl(dst.conn('postgres'), { password: true }),
        strategy: 'logical',
        phase: 'sync',
        options: { jobs: 2, verify: 'count' },
        mode: 'in-process',
        databases: ['crm', 'metrics'],
      };
      const news = { ...inputs, __provider: providerText };
      const checked = await host.check(URN, {}, news);
      assert.deepEqual(checked.failures, []);
      const created = await host.create(URN, checked.inputs);
      const outs = created.properties as unknown as RunOutputs;
      assert.equal(outs.status, 'streaming');
      assert.deepEqual(
        (
          await sql<{ d: string }>(
            dst.conn('postgres'),
            `SELECT datname AS d FROM pg_database WHERE datname IN ('crm', 'metrics') ORDER BY 1`,
          )
        ).map((r) => r.d),
        ['crm', 'metrics'],
      );
      assert.deepEqual((await host.diff(URN, created.id, outs, { ...news, databases: ['crm'] })).replaces, ['databases']);
      const rolling = await host.check(URN, outs as unknown as Record<string, unknown>, { ...news, phase: 'rollback' });
      assert.ok(
        rolling.failures.some((f) => f.property === 'phase' && /several databases has no rollback phase/.test(f.reason)),
        JSON.stringify(rolling.failures),
      );
      await sql(src.conn('crm'), `INSERT INTO contacts (email) VALUES ('during-sync@example.com')`);
      const updated = (await host.update(URN, created.id, outs, { ...news, phase: 'cutover' })) as unknown as RunOutputs;
      assert.equal(updated.status, 'done');
      assert.equal(updated.verified, true);
      assert.ok(updated.blackoutSeconds !== null && updated.blackoutSeconds < 5, `blackout ${updated.blackoutSeconds}`);
      assert.equal((await sql(dst.conn('crm'), `SELECT 1 FROM contacts WHERE email = 'during-sync@example.com'`)).length, 1);
      await host.delete(URN, created.id, updated as unknown as Record<string, unknown>);
      for (const db of ['crm', 'metrics']) {
        assert.deepEqual(await sql(src.conn(db), `SELECT slot_name FROM pg_replication_slots WHERE database = current_database()`), []);
        assert.deepEqual(await sql(dst.conn(db), `SELECT 1 FROM pg_namespace WHERE nspname = 'pgrelocate'`), []);
      }
    } finally {
      await Promise.all([src.stop(), dst.stop()]);
    }
  });

  it('check refuses a cutover phase for dump-restore and a worker-less ssm run', async function () {
    const r = await host.check(
      URN,
      {},
      {
        __provider: providerText,
        source: 'postgresql://a@h/db',
        target: 'postgresql://a@h/db2',
        strategy: 'dump-restore',
        phase: 'cutover',
        options: {},
        mode: 'ssm',
      },
    );
    assert.deepEqual(r.failures.map((f) => f.property).sort(), ['phase', 'workerInstanceId']);
    const local = await host.check(
      URN,
      {},
      { __provider: providerText, source: 's', target: 't', strategy: 'bucardo', phase: 'sync', options: {}, mode: 'in-process' },
    );
    assert.deepEqual(
      local.failures.map((f) => f.property),
      ['strategy'],
    );
    assert.match(local.failures[0]!.reason, /only the worker of an aws stack runs/);
  });
});
