/**
 * The Pulumi program under Pulumi's own mocks (pulumi/examples testing-unit-ts):
 * every stack example in stacks/ is built and each resource's inputs asserted.
 * Options are asserted on the pure functions that build them (mocks never see options).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import { parse } from 'yaml';
import { ConfigError, parseStackConfig, targetStorageGb, workerDiskGb } from '../../components/config';
import { disposableOptions, migrationRunOptions, protectedOptions } from '../../components/options';
import { buildStack, urlParts, withHost } from '../../components/stack';

interface Recorded {
  readonly type: string;
  readonly name: string;
  readonly inputs: Record<string, unknown>;
  readonly provider?: string;
}

const STACKS = path.resolve(__dirname, '..', '..', '..', 'stacks');

function stackConfig(stack: string): Record<string, unknown> {
  const doc = parse(readFileSync(path.join(STACKS, `Pulumi.${stack}.yaml`), 'utf8')) as { config: Record<string, unknown> };
  return Object.fromEntries(Object.entries(doc.config).map(([k, v]) => [k.replace(/^pgrelocate:/, ''), v]));
}

async function build(
  stack: string,
  override: Record<string, unknown> = {},
): Promise<{ resources: Recorded[]; outputs: Record<string, unknown> }> {
  const resources: Recorded[] = [];
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        resources.push({ type: args.type, name: args.name, inputs: args.inputs, ...(args.provider ? { provider: args.provider } : {}) });
        const state: Record<string, unknown> = { name: args.name, ...args.inputs, arn: `arn:aws:mock:::${args.name}` };
        if (args.type === 'aws:rds/instance:Instance') Object.assign(state, { address: `${args.name}.mock.rds.amazonaws.com`, port: 5432 });
        if (args.type === 'aws:ec2/instance:Instance') Object.assign(state, { availabilityZone: 'eu-west-1a' });
        if (args.type === 'random:index/randomPassword:RandomPassword') Object.assign(state, { result: 'generated-password' });
        if (args.type === 'aws:ssm/parameter:Parameter')
          Object.assign(state, { arn: `arn:aws:ssm:eu-west-1:1:parameter${String(args.inputs['name'])}` });
        return { id: `${args.name}-id`, state };
      },
      call(args) {
        if (args.token === 'aws:ec2/getAmi:getAmi') return { id: 'ami-0mockdebian13' };
        if (args.token === 'aws:rds/getSnapshot:getSnapshot')
          return { id: 'rds:shop-production-pg12-2026-11-21', dbSnapshotIdentifier: 'rds:shop-production-pg12-2026-11-21' };
        return args.inputs;
      },
    },
    'pgrelocate',
    stack,
    false,
  );
  const cfg = parseStackConfig({ ...stackConfig(stack), ...override });
  const out = buildStack(cfg, {
    sourceUrl: pulumi.secret('postgresql://app:source-secret@source.internal:5432/shop'),
    ...(cfg.mode === 'local' ? { targetUrl: pulumi.secret('postgresql://admin:target-secret@target.internal:5432/shop') } : {}),
  });
  const outputs: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(out)) {
    outputs[k] = pulumi.Output.isInstance(v) ? await new Promise((resolve) => (v as pulumi.Output<unknown>).apply(resolve)) : v;
  }
  // Let the last registrations land.
  await new Promise((r) => setTimeout(r, 50));
  return { resources, outputs };
}

const ofType = (rs: Recorded[], type: string): Recorded[] => rs.filter((r) => r.type === type);
const one = (rs: Recorded[], type: string, name?: string): Recorded => {
  const found = ofType(rs, type).filter((r) => !name || r.name === name);
  assert.equal(found.length, 1, `exactly one ${type}${name ? ` named ${name}` : ''} (found ${found.map((f) => f.name).join(', ')})`);
  return found[0]!;
};

describe('Pulumi program (mocks)', function () {
  this.timeout(60_000);

  describe('production stack', function () {
    let rs: Recorded[];
    let outputs: Record<string, unknown>;
    before(async function () {
      ({ resources: rs, outputs } = await build('production'));
    });

    it('target RDS: engine version, storage from the source, protected, final snapshot, private, encrypted', function () {
      const db = one(rs, 'aws:rds/instance:Instance', 'target-db').inputs;
      assert.equal(db['engine'], 'postgres');
      assert.equal(db['engineVersion'], '17');
      assert.equal(db['instanceClass'], 'db.r6g.2xlarge');
      assert.equal(db['allocatedStorage'], targetStorageGb({ sourceSizeGb: 250, storageHeadroomPercent: 40 }));
      assert.equal(db['allocatedStorage'], 350);
      assert.equal(db['storageType'], 'gp3');
      assert.equal(db['deletionProtection'], true);
      assert.equal(db['skipFinalSnapshot'], false);
      assert.equal(db['finalSnapshotIdentifier'], 'target-final');
      assert.equal(db['publiclyAccessible'], false);
      assert.equal(db['storageEncrypted'], true);
      assert.equal(db['multiAz'], true);
      // A secret (the SDK's secret signature), holding the generated password.
      assert.equal((db['password'] as { value: string }).value, 'generated-password');
      assert.equal((db['password'] as Record<string, string>)['4dabf18193072939515e22adb298388d'], '1b47061264138c4ac30d75fd1eb44270');
    });

    it('target security group: 5432 from the worker and the named CIDR only, never 0.0.0.0/0', function () {
      const sg = one(rs, 'aws:ec2/securityGroup:SecurityGroup', 'target-sg').inputs as {
        ingress: { cidrBlocks?: string[]; securityGroups?: string[]; fromPort: number }[];
      };
      assert.deepEqual(
        sg.ingress.map((r) => [r.fromPort, r.cidrBlocks ?? r.securityGroups]),
        [
          [5432, ['worker-sg-id']],
          [5432, ['10.20.0.0/16']],
        ],
      );
      for (const r of sg.ingress) assert.ok(!(r.cidrBlocks ?? []).includes('0.0.0.0/0'));
      const worker = one(rs, 'aws:ec2/securityGroup:SecurityGroup', 'worker-sg').inputs as { ingress: unknown[] };
      assert.deepEqual(worker.ingress, [], 'the worker has no inbound rule');
    });

    it('parameter groups: bulk-load target during sync; replication on the source with pending-reboot for static ones', function () {
      const t = one(rs, 'aws:rds/parameterGroup:ParameterGroup', 'target-params').inputs as {
        family: string;
        parameters: { name: string; value: string; applyMethod: string }[];
      };
      assert.equal(t.family, 'postgres17');
      const tp = new Map(t.parameters.map((p) => [p.name, p]));
      assert.equal(tp.get('synchronous_commit')?.value, 'off');
      assert.equal(tp.get('autovacuum')?.value, '0');
      assert.equal(tp.get('max_worker_processes')?.applyMethod, 'pending-reboot');
      assert.equal(tp.get('maintenance_work_mem')?.applyMethod, 'immediate');
      const s = one(rs, 'aws:rds/parameterGroup:ParameterGroup', 'source-params').inputs as {
        family: string;
        parameters: { name: string; value: string; applyMethod: string }[];
      };
      assert.equal(s.family, 'postgres12');
      assert.deepEqual(
        s.parameters.map((p) => `${p.name}=${p.value}/${p.applyMethod}`),
        [
          'rds.logical_replication=1/pending-reboot',
          'max_replication_slots=10/pending-reboot',
          'max_wal_senders=15/pending-reboot',
          'max_worker_processes=16/pending-reboot',
          'wal_sender_timeout=0/immediate',
        ],
      );
      assert.equal(outputs['sourceRebootRequired'], true);
    });

    it('worker: SSM only, IMDSv2, data disk twice the source, a policy for its two parameters, user-data without secrets', function () {
      const vol = one(rs, 'aws:ebs/volume:Volume').inputs;
      assert.equal(vol['size'], workerDiskGb({ sourceSizeGb: 250 }));
      assert.equal(vol['size'], 500);
      assert.equal(vol['encrypted'], true);
      const ec2 = one(rs, 'aws:ec2/instance:Instance').inputs as Record<string, unknown> & {
        metadataOptions: { httpTokens: string };
        userData: string;
      };
      assert.equal(ec2['instanceType'], 'm6i.2xlarge');
      assert.equal(ec2['ami'], 'ami-0mockdebian13');
      assert.equal(ec2['keyName'], undefined, 'no SSH key');
      assert.equal(ec2.metadataOptions.httpTokens, 'required');
      assert.match(ec2.userData, /^#cloud-config\n/);
      assert.match(ec2.userData, /postgresql-client-17/);
      assert.match(ec2.userData, /PGRELOCATE_SOURCE_PARAM=\/pgrelocate\/production\/source-url/);
      assert.doesNotMatch(ec2.userData, /source-secret|target-secret|generated-password|postgresql:\/\//);
      const attach = one(rs, 'aws:iam/rolePolicyAttachment:RolePolicyAttachment').inputs;
      assert.equal(attach['policyArn'], 'arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore');
      const policy = JSON.parse(String(one(rs, 'aws:iam/rolePolicy:RolePolicy').inputs['policy'])) as {
        Statement: { Action: string[]; Resource: string[] | string }[];
      };
      assert.deepEqual(policy.Statement[0]!.Action, ['ssm:GetParameter']);
      assert.deepEqual(policy.Statement[0]!.Resource, [
        'arn:aws:ssm:eu-west-1:1:parameter/pgrelocate/production/source-url',
        'arn:aws:ssm:eu-west-1:1:parameter/pgrelocate/production/target-url',
      ]);
      for (const p of ofType(rs, 'aws:ssm/parameter:Parameter')) assert.equal(p.inputs['type'], 'SecureString');
    });

    it('a read replica of the target in the second region', function () {
      const replica = one(rs, 'aws:rds/instance:Instance', 'target-replica');
      assert.equal(replica.inputs['replicateSourceDb'], 'arn:aws:mock:::target-db');
      const provider = one(rs, 'pulumi:providers:aws', 'target-replica-region');
      assert.equal(provider.inputs['region'], 'eu-central-1');
      assert.match(replica.provider ?? '', /target-replica-region/);
    });

    it('database objects through @pulumi/postgresql: migration role, database, extensions, application grants', function () {
      const role = one(rs, 'postgresql:index/role:Role', 'db-migration-role').inputs;
      assert.equal(role['name'], 'pgrelocate');
      assert.deepEqual(role['roles'], ['rds_superuser']);
      assert.equal(role['login'], true);
      const db = one(rs, 'postgresql:index/database:Database').inputs;
      assert.equal(db['name'], 'app');
      assert.equal(db['owner'], 'pgrelocate');
      assert.deepEqual(
        ofType(rs, 'postgresql:index/extension:Extension').map((e) => e.inputs['name']),
        ['citext', 'pgcrypto'],
      );
      const grant = one(rs, 'postgresql:index/grant:Grant').inputs;
      assert.deepEqual([grant['role'], grant['objectType'], grant['privileges']], ['shop_app', 'database', ['CONNECT', 'TEMPORARY']]);
      const provider = one(rs, 'pulumi:providers:postgresql', 'db-target').inputs;
      assert.equal(provider['sslmode'], 'require');
      assert.equal(provider['host'], 'target-db.mock.rds.amazonaws.com');
    });

    it('the migration run: strategy, phase and options from config, on the worker through SSM', function () {
      const run = one(rs, 'pulumi-nodejs:dynamic:Resource', 'run').inputs;
      assert.equal(run['mode'], 'ssm');
      assert.equal(run['strategy'], 'logical');
      assert.equal(run['phase'], 'sync');
      assert.equal(run['workerInstanceId'], 'worker-instance-id');
      assert.equal((run['options'] as { preHook: string }).preHook, '/opt/shop/bin/maintenance on');
      assert.match(String(run['__provider']), /exports\.handler/);
    });
  });

  it('cutover phase: the target gets the production parameters', async function () {
    const { resources } = await build('production', { phase: 'cutover' });
    const t = one(resources, 'aws:rds/parameterGroup:ParameterGroup', 'target-params').inputs as {
      parameters: { name: string; value: string }[];
    };
    assert.equal(t.parameters.find((p) => p.name === 'synchronous_commit')?.value, 'on');
    assert.equal(t.parameters.find((p) => p.name === 'autovacuum')?.value, '1');
    assert.equal(one(resources, 'pulumi-nodejs:dynamic:Resource', 'run').inputs['phase'], 'cutover');
  });

  it('rehearsal stack: a disposable restore of the source snapshot, with the replication parameter group', async function () {
    const { resources } = await build('rehearsal');
    const copy = one(resources, 'aws:rds/instance:Instance', 'rehearsal-source').inputs;
    assert.equal(copy['snapshotIdentifier'], 'rds:shop-production-pg12-2026-11-21');
    assert.equal(copy['deletionProtection'], false);
    assert.equal(copy['skipFinalSnapshot'], true);
    assert.ok(copy['parameterGroupName']);
    const sg = one(resources, 'aws:ec2/securityGroup:SecurityGroup', 'rehearsal-source-sg').inputs as {
      ingress: { securityGroups: string[] }[];
    };
    assert.deepEqual(sg.ingress[0]!.securityGroups, ['worker-sg-id']);
    assert.equal(ofType(resources, 'aws:rds/instance:Instance').length, 2, 'no replica on the rehearsal');
  });

  it('local stack: only the migration run, in-process, no AWS resources', async function () {
    const { resources } = await build('local');
    assert.deepEqual(
      resources.map((r) => r.type),
      ['pulumi-nodejs:dynamic:Resource'],
    );
    assert.equal(resources[0]!.inputs['mode'], 'in-process');
  });

  it('config errors name each bad key', function () {
    const bad = () =>
      parseStackConfig({
        mode: 'aws',
        phase: 'later',
        aws: {
          ...(stackConfig('production')['aws'] as object),
          subnetIds: ['subnet-1'],
          allowedCidrs: ['0.0.0.0/0'],
          engineVersion: 'seventeen',
          surprise: 1,
        },
      });
    assert.throws(bad, (e: ConfigError) => {
      const text = e.issues.join('\n');
      assert.match(text, /pgrelocate:phase: /);
      assert.match(text, /pgrelocate:aws\.subnetIds: at least 2 subnets/);
      assert.match(text, /pgrelocate:aws\.allowedCidrs\.0: a CIDR narrower than \/0/);
      assert.match(text, /pgrelocate:aws\.engineVersion: a PostgreSQL version/);
      assert.match(text, /surprise/);
      return true;
    });
    assert.throws(() => parseStackConfig({ mode: 'aws' }), /pgrelocate:aws: required when mode is aws/);
    assert.throws(() => parseStackConfig({}), /pgrelocate:mode/);
  });

  it('resource options: the target is protected, the worker replaceable, the run may take two days', function () {
    const parent = {} as pulumi.Resource;
    assert.deepEqual(protectedOptions(parent), {
      parent,
      protect: true,
      customTimeouts: { create: '120m', update: '120m', delete: '60m' },
    });
    assert.deepEqual(disposableOptions(parent), { parent, deleteBeforeReplace: true });
    assert.deepEqual(migrationRunOptions([parent]), { dependsOn: [parent], customTimeouts: { create: '48h', update: '6h', delete: '1h' } });
  });

  it('URL helpers keep credentials and swap hosts', function () {
    assert.equal(
      withHost('postgresql://u:p%40ss@old:5432/db?sslmode=require', 'new.host'),
      'postgresql://u:p%40ss@new.host:5432/db?sslmode=require',
    );
    assert.deepEqual(urlParts('postgresql://u:p%40ss@h:6432/db'), {
      host: 'h',
      port: 6432,
      username: 'u',
      password: 'p@ss',
      database: 'db',
    });
  });
});
