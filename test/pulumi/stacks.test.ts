/**
 * The Pulumi program under Pulumi's own mocks (pulumi/examples testing-unit-ts):
 * every stack example in stacks/ is built and each resource's inputs asserted.
 * Resource options are read through a stack transformation, which the SDK
 * applies before a resource reaches the (mocked) engine: retainOnDelete,
 * ignoreChanges and protect are asserted as the engine would get them.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import { parse } from 'yaml';
import { awsAccessOf } from '../../components/aws-access';
import { ConfigError, parseStackConfig, targetStorageGb, workerDiskGb } from '../../components/config';
import { disposableOptions, lookupPinnedOptions, migrationRunOptions, retainedOptions } from '../../components/options';
import { admitsSourceOnTarget, buildStack, sourceIngressFrom, targetRunUrl, withHost } from '../../components/stack';
import { finalSnapshotIdentifier, TARGET_PARAMETER_GROUP_DESCRIPTION } from '../../components/target-database';
import { SSM_AGENT_ACTIONS } from '../../components/worker';
import { readWorkerPackage } from '../../components/worker-package';

interface Recorded {
  readonly type: string;
  readonly name: string;
  readonly inputs: Record<string, unknown>;
  readonly provider?: string;
  /** The options the resource was registered with. */
  readonly opts: pulumi.CustomResourceOptions;
}

const STACKS = path.resolve(__dirname, '..', '..', '..', 'stacks');

/** What the `mostRecent` look-ups return under the mocks: a value seen in a resource's inputs came from one. */
const LOOKED_UP = { ami: 'ami-0mockdebian13', snapshot: 'rds:shop-production-pg12-2026-11-21' };

function stackFile(stack: string): Record<string, unknown> {
  return (parse(readFileSync(path.join(STACKS, `Pulumi.${stack}.yaml`), 'utf8')) as { config: Record<string, unknown> }).config;
}

function stackConfig(stack: string): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(stackFile(stack))
      .filter(([k]) => k.startsWith('pgrelocate:'))
      .map(([k, v]) => [k.replace(/^pgrelocate:/, ''), v]),
  );
}

let packageDir: string;
let packageFile: string;
before(function () {
  packageDir = mkdtempSync(path.join(os.tmpdir(), 'pgrelocate-pkg-'));
  packageFile = path.join(packageDir, 'pgrelocate-0.1.0.tgz');
  writeFileSync(packageFile, 'a packed CLI, for the mocks only');
});
after(() => packageDir && rmSync(packageDir, { recursive: true, force: true }));

async function build(
  stack: string,
  override: Record<string, unknown> = {},
): Promise<{ resources: Recorded[]; outputs: Record<string, unknown>; lookups: string[] }> {
  const registered: Omit<Recorded, 'opts'>[] = [];
  const opts = new Map<string, pulumi.CustomResourceOptions>();
  const lookups: string[] = [];
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        if (args.type === 'pulumi:pulumi:Stack') return { id: args.name, state: {} };
        registered.push({ type: args.type, name: args.name, inputs: args.inputs, ...(args.provider ? { provider: args.provider } : {}) });
        const state: Record<string, unknown> = { name: args.name, ...args.inputs, arn: `arn:aws:mock:::${args.name}` };
        if (args.type === 'aws:rds/instance:Instance') Object.assign(state, { address: `${args.name}.mock.rds.amazonaws.com`, port: 5432 });
        if (args.type === 'aws:ec2/instance:Instance') Object.assign(state, { availabilityZone: 'eu-west-1a' });
        if (args.type === 'aws:s3/bucket:Bucket') Object.assign(state, { bucket: 'pgrelocate-mock-bucket' });
        if (args.type === 'random:index/randomPassword:RandomPassword') Object.assign(state, { result: 'generated/pass word' });
        if (args.type === 'aws:ssm/parameter:Parameter')
          Object.assign(state, { arn: `arn:aws:ssm:eu-west-1:1:parameter${String(args.inputs['name'])}` });
        return { id: `${args.name}-id`, state };
      },
      call(args) {
        lookups.push(args.token);
        if (args.token === 'aws:ec2/getAmi:getAmi') return { id: LOOKED_UP.ami };
        if (args.token === 'aws:rds/getSnapshot:getSnapshot') return { id: LOOKED_UP.snapshot, dbSnapshotIdentifier: LOOKED_UP.snapshot };
        return args.inputs;
      },
    },
    'pgrelocate',
    stack,
    false,
  );
  const base = stackConfig(stack);
  const cfg = parseStackConfig({
    ...base,
    ...override,
    ...(base['aws'] ? { aws: { ...(base['aws'] as object), workerPackage: packageFile, ...(override['aws'] as object) } } : {}),
  });
  const region = stackFile(stack)['aws:region'] as string | undefined;
  const outputs: Record<string, unknown> = {};
  await pulumi.runtime.runInPulumiStack(async () => {
    pulumi.runtime.registerStackTransformation((a) => {
      opts.set(a.name, a.opts);
      return undefined;
    });
    const out = buildStack(
      cfg,
      {
        sourceUrl: pulumi.secret('postgresql://app:source-secret@source.internal:5432/shop'),
        ...(cfg.mode === 'local' ? { targetUrl: pulumi.secret('postgresql://admin:target-secret@target.internal:5432/shop') } : {}),
      },
      cfg.mode === 'aws' ? { aws: awsAccessOf({ region }) } : {},
    );
    for (const [k, v] of Object.entries(out)) {
      outputs[k] = pulumi.Output.isInstance(v) ? await new Promise((resolve) => (v as pulumi.Output<unknown>).apply(resolve)) : v;
    }
    return {};
  });
  // Let the last registrations land.
  await new Promise((r) => setTimeout(r, 50));
  return { resources: registered.map((r) => ({ ...r, opts: opts.get(r.name) ?? {} })), outputs, lookups };
}

const ofType = (rs: Recorded[], type: string): Recorded[] => rs.filter((r) => r.type === type);
const one = (rs: Recorded[], type: string, name?: string): Recorded => {
  const found = ofType(rs, type).filter((r) => !name || r.name === name);
  assert.equal(found.length, 1, `exactly one ${type}${name ? ` named ${name}` : ''} (found ${found.map((f) => f.name).join(', ')})`);
  return found[0]!;
};
/** The unwrapped value of a (possibly secret) input. */
const plain = (v: unknown): unknown => (v && typeof v === 'object' && 'value' in (v as object) ? (v as { value: unknown }).value : v);

/** Which top-level inputs of a resource hold a value a mostRecent look-up returned. */
function lookedUpInputs(r: Recorded): string[] {
  return Object.entries(r.inputs)
    .filter(([, v]) => Object.values(LOOKED_UP).some((x) => JSON.stringify(plain(v) ?? null).includes(x)))
    .map(([k]) => k);
}

describe('Pulumi program (mocks)', function () {
  this.timeout(60_000);

  describe('production stack', function () {
    let rs: Recorded[];
    let outputs: Record<string, unknown>;
    before(async function () {
      ({ resources: rs, outputs } = await build('production'));
    });

    it('target RDS: engine version, gp3 storage from the source with autoscaling, final snapshot named for the stack, private, encrypted', function () {
      const db = one(rs, 'aws:rds/instance:Instance', 'target-db').inputs;
      assert.equal(db['engine'], 'postgres');
      assert.equal(db['engineVersion'], '17');
      assert.equal(db['instanceClass'], 'db.r6g.2xlarge');
      assert.equal(db['allocatedStorage'], targetStorageGb({ sourceSizeGb: 250, storageHeadroomPercent: 40 }));
      assert.equal(db['allocatedStorage'], 350);
      assert.equal(db['maxAllocatedStorage'], 700);
      assert.equal(db['storageType'], 'gp3');
      assert.equal(db['deletionProtection'], true);
      assert.equal(db['skipFinalSnapshot'], false);
      assert.equal(db['finalSnapshotIdentifier'], 'pgrelocate-production-target-final');
      assert.equal(db['publiclyAccessible'], false);
      assert.equal(db['storageEncrypted'], true);
      assert.equal(db['multiAz'], true);
      // RDS creates the migrated database with the instance: nothing has to reach the private target from the laptop.
      assert.equal(db['dbName'], 'app');
      assert.equal(plain(db['password']), 'generated/pass word');
    });

    it('nothing talks SQL from where pulumi up runs: no @pulumi/postgresql provider or resource', function () {
      assert.deepEqual(
        rs.filter((r) => r.type.startsWith('postgresql:') || r.type === 'pulumi:providers:postgresql').map((r) => r.name),
        [],
      );
    });

    it('pulumi destroy keeps the target, its database and what it stands on (retainOnDelete), and nothing is protect-ed', function () {
      const kept = rs.filter((r) => r.opts.retainOnDelete).map((r) => r.name);
      assert.deepEqual(kept.sort(), [
        'target-db',
        'target-params',
        'target-replica',
        'target-replica-key',
        'target-replica-subnets',
        'target-sg',
        'target-subnets',
      ]);
      assert.deepEqual(
        rs.filter((r) => r.opts.protect).map((r) => r.name),
        [],
        'protect would make pulumi destroy refuse the whole stack',
      );
      // The rest is removed by destroy: the worker, its bucket, parameters, role, the source's ingress rules.
      for (const name of ['worker-instance', 'worker-artefacts', 'worker-source-url', 'worker-role', 'source-from-target'])
        assert.ok(!kept.includes(name), name);
    });

    it('no replace-on-change input is fed by a mostRecent look-up without being pinned (ignoreChanges)', function () {
      const fed = rs.flatMap((r) => lookedUpInputs(r).map((k) => ({ r, k })));
      assert.ok(fed.length > 0, 'the worker AMI comes from a look-up');
      for (const { r, k } of fed) assert.ok((r.opts.ignoreChanges ?? []).includes(k), `${r.name}.${k} comes from a mostRecent look-up`);
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

    it("the source's security group admits the worker and the target (the subscription connects from it), as rules destroy removes", function () {
      const rules = ofType(rs, 'aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule').map((r) => r.inputs);
      assert.deepEqual(
        rules.map((r) => [r['securityGroupId'], r['referencedSecurityGroupId'], r['fromPort'], r['toPort'], r['ipProtocol']]),
        [
          ['sg-0source0000000000', 'worker-sg-id', 5432, 5432, 'tcp'],
          ['sg-0source0000000000', 'target-sg-id', 5432, 5432, 'tcp'],
        ],
      );
      assert.deepEqual(sourceIngressFrom('dump-restore'), ['worker']);
      assert.deepEqual(sourceIngressFrom('pglogical'), ['worker', 'target']);
    });

    it('parameter groups: bulk-load target during sync; replication on the source with pending-reboot for static ones', function () {
      const t = one(rs, 'aws:rds/parameterGroup:ParameterGroup', 'target-params').inputs as {
        family: string;
        description: string;
        parameters: { name: string; value: string; applyMethod: string }[];
      };
      assert.equal(t.family, 'postgres17');
      assert.equal(t.description, TARGET_PARAMETER_GROUP_DESCRIPTION);
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

    it('worker: SSM only, IMDSv2, its own CLI package from a private bucket, a policy with nothing beyond its needs, user-data without secrets', function () {
      const vol = one(rs, 'aws:ebs/volume:Volume').inputs;
      assert.equal(vol['size'], workerDiskGb({ sourceSizeGb: 250 }, 'logical'));
      assert.equal(vol['size'], 50, 'logical copies table to table: no dump space');
      assert.equal(vol['encrypted'], true);
      const ec2 = one(rs, 'aws:ec2/instance:Instance').inputs as Record<string, unknown> & {
        metadataOptions: { httpTokens: string };
        userData: string;
      };
      assert.equal(ec2['instanceType'], 'm6i.2xlarge');
      assert.equal(ec2['ami'], LOOKED_UP.ami);
      assert.equal(ec2['keyName'], undefined, 'no SSH key');
      assert.equal(ec2.metadataOptions.httpTokens, 'required');
      assert.match(ec2.userData, /^#cloud-config\n/);
      assert.match(ec2.userData, /postgresql-client-17/);
      assert.match(ec2.userData, /PGRELOCATE_SOURCE_PARAM=\/pgrelocate\/production\/source-url/);
      assert.doesNotMatch(ec2.userData, /source-secret|target-secret|generated|postgresql:\/\//);
      assert.doesNotMatch(ec2.userData, /npm install/, 'nothing from the npm registry on the worker');
      const pkg = readWorkerPackage(packageFile);
      assert.ok(ec2.userData.includes(`s3://pgrelocate-mock-bucket/${pkg.key}`));
      assert.ok(ec2.userData.includes(pkg.sha256));
      assert.deepEqual((parse(ec2.userData) as { runcmd: unknown[] }).runcmd[0], ['/usr/local/sbin/pgrelocate-ssm-agent', 'eu-west-1']);

      const object = one(rs, 'aws:s3/bucketObjectv2:BucketObjectv2').inputs;
      assert.equal(object['key'], `pgrelocate/${pkg.sha256}.tgz`);
      const block = one(rs, 'aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock').inputs;
      for (const k of ['blockPublicAcls', 'blockPublicPolicy', 'ignorePublicAcls', 'restrictPublicBuckets'])
        assert.equal(block[k], true, k);
      assert.equal(one(rs, 'aws:s3/bucket:Bucket').inputs['forceDestroy'], true, 'destroy removes the bucket with its object');

      assert.deepEqual(
        ofType(rs, 'aws:iam/rolePolicyAttachment:RolePolicyAttachment'),
        [],
        'no managed policy (SSMManagedInstanceCore reads every parameter)',
      );
      const policy = JSON.parse(String(one(rs, 'aws:iam/rolePolicy:RolePolicy').inputs['policy'])) as {
        Statement: { Sid: string; Action: string[]; Resource: string[] | string; Condition?: unknown }[];
      };
      const bySid = new Map(policy.Statement.map((st) => [st.Sid, st]));
      assert.deepEqual(bySid.get('UrlParameters')!.Resource, [
        'arn:aws:ssm:eu-west-1:1:parameter/pgrelocate/production/source-url',
        'arn:aws:ssm:eu-west-1:1:parameter/pgrelocate/production/target-url',
      ]);
      assert.deepEqual(bySid.get('CliPackage')!.Resource, ['arn:aws:mock:::worker-cli']);
      assert.deepEqual(bySid.get('DecryptThroughSsm')!.Condition, { StringEquals: { 'kms:ViaService': 'ssm.eu-west-1.amazonaws.com' } });
      // A wildcard resource only for the agent's own calls, and kms:Decrypt bound to SSM in the region.
      for (const st of policy.Statement.filter((x) => x.Resource === '*'))
        assert.ok(
          st.Action.every((a) => (SSM_AGENT_ACTIONS as readonly string[]).includes(a)) ||
            (st.Action.join() === 'kms:Decrypt' && st.Condition),
          st.Sid,
        );
      assert.ok(!JSON.stringify(policy).includes('ssm:GetParameters'), 'no GetParameters');
      for (const p of ofType(rs, 'aws:ssm/parameter:Parameter')) assert.equal(p.inputs['type'], 'SecureString');
    });

    it('an encrypted read replica in the second region, with a key and a subnet group of that region', function () {
      const regional = one(rs, 'pulumi:providers:aws', 'target-replica-region');
      assert.equal(regional.inputs['region'], 'eu-central-1');
      const replica = one(rs, 'aws:rds/instance:Instance', 'target-replica');
      assert.equal(replica.inputs['replicateSourceDb'], 'arn:aws:mock:::target-db');
      assert.equal(replica.inputs['storageEncrypted'], true);
      assert.equal(replica.inputs['kmsKeyId'], 'arn:aws:mock:::target-replica-key');
      assert.equal(replica.inputs['dbSubnetGroupName'], 'target-replica-subnets');
      for (const name of ['target-replica', 'target-replica-key', 'target-replica-subnets'])
        assert.match(rs.find((r) => r.name === name)!.provider ?? '', /target-replica-region/, `${name} in the replica's region`);
      assert.deepEqual(one(rs, 'aws:rds/subnetGroup:SubnetGroup', 'target-replica-subnets').inputs['subnetIds'], [
        'subnet-0ccccccccccccccccc',
        'subnet-0ddddddddddddddddd',
      ]);
    });

    it("the migration run: on the worker through SSM with the aws provider's region, as the target's master user over TLS", function () {
      const run = one(rs, 'pulumi-nodejs:dynamic:Resource', 'run').inputs;
      assert.equal(run['mode'], 'ssm');
      assert.equal(run['strategy'], 'logical');
      assert.equal(run['phase'], 'sync');
      assert.equal(run['workerInstanceId'], 'worker-instance-id');
      assert.deepEqual(run['aws'], { region: 'eu-west-1' });
      assert.equal(run['region'], undefined);
      assert.equal((run['options'] as { preHook: string }).preHook, '/opt/shop/bin/maintenance on');
      assert.equal(
        plain(run['target']),
        'postgresql://pgrelocate_admin:generated%2Fpass%20word@target-db.mock.rds.amazonaws.com:5432/app?sslmode=require',
      );
      assert.match(String(run['__provider']), /exports\.handler/);
      // The engine keeps the URLs secret in the state and outputs, whatever the provider returns.
      assert.deepEqual(one(rs, 'pulumi-nodejs:dynamic:Resource', 'run').opts.additionalSecretOutputs, ['source', 'target']);
    });
  });

  it('cutover phase: the target gets the production parameters, in the same group (no reboot, no replacement)', async function () {
    const sync = one((await build('production')).resources, 'aws:rds/parameterGroup:ParameterGroup', 'target-params').inputs;
    const { resources } = await build('production', { phase: 'cutover' });
    const t = one(resources, 'aws:rds/parameterGroup:ParameterGroup', 'target-params').inputs as {
      description: string;
      family: string;
      parameters: { name: string; value: string; applyMethod: string }[];
    };
    assert.equal(t.parameters.find((p) => p.name === 'synchronous_commit')?.value, 'on');
    assert.equal(t.parameters.find((p) => p.name === 'autovacuum')?.value, '1');
    // description and family are replace-on-change: equal in both phases.
    assert.equal(t.description, sync['description']);
    assert.equal(t.family, sync['family']);
    // Only dynamic parameters change: a static one would wait for a reboot nothing does.
    const changed = t.parameters.filter(
      (p) => !(sync['parameters'] as { name: string; value: string }[]).some((q) => q.name === p.name && q.value === p.value),
    );
    assert.ok(changed.length > 0);
    for (const p of changed) assert.equal(p.applyMethod, 'immediate', p.name);
    assert.equal(one(resources, 'pulumi-nodejs:dynamic:Resource', 'run').inputs['phase'], 'cutover');
  });

  it('rollback: the target admits the source (its subscription comes back), logical decoding on the target from the start; phase rollback keeps the production settings', async function () {
    const rule = (rs: Recorded[]) =>
      ofType(rs, 'aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule')
        .filter((r) => r.name === 'target-from-source')
        .map((r) => [r.inputs['securityGroupId'], r.inputs['referencedSecurityGroupId'], r.inputs['fromPort']]);
    const withBack = await build('production', { options: { rollback: true } });
    assert.deepEqual(rule(withBack.resources), [['target-sg-id', 'sg-0source0000000000', 5432]]);
    assert.deepEqual(rule((await build('production')).resources), [], 'without the way back the target admits only the worker');
    const params = (rs: Recorded[]) =>
      (one(rs, 'aws:rds/parameterGroup:ParameterGroup', 'target-params').inputs['parameters'] as { name: string; value: string }[]).map(
        (p) => `${p.name}=${p.value}`,
      );
    // Static, so the same in every phase: no reboot between them, and a rollback finds the new server able to publish.
    assert.ok(params(withBack.resources).includes('rds.logical_replication=1'));
    const back = await build('production', { phase: 'rollback', options: { rollback: true } });
    assert.deepEqual(params(back.resources), params((await build('production', { phase: 'cutover' })).resources));
    assert.equal(one(back.resources, 'pulumi-nodejs:dynamic:Resource', 'run').inputs['phase'], 'rollback');
    assert.equal(admitsSourceOnTarget('dump-restore', parseStackConfig({ mode: 'local', options: { rollback: true } }).options), false);
  });

  it('rehearsal stack: a disposable restore of the latest snapshot, pinned, reachable by the worker and the target', async function () {
    const { resources, lookups } = await build('rehearsal');
    const copy = one(resources, 'aws:rds/instance:Instance', 'rehearsal-source');
    assert.equal(copy.inputs['snapshotIdentifier'], LOOKED_UP.snapshot);
    assert.deepEqual(copy.opts.ignoreChanges, ['snapshotIdentifier'], "tomorrow's snapshot must not replace the copy mid-run");
    assert.equal(copy.inputs['deletionProtection'], false);
    assert.equal(copy.inputs['skipFinalSnapshot'], true);
    assert.ok(copy.inputs['parameterGroupName']);
    assert.ok(lookups.includes('aws:rds/getSnapshot:getSnapshot'));
    const sg = one(resources, 'aws:ec2/securityGroup:SecurityGroup', 'rehearsal-source-sg').inputs as {
      ingress: { securityGroups: string[] }[];
    };
    assert.deepEqual(
      sg.ingress.map((r) => r.securityGroups),
      [['worker-sg-id'], ['target-sg-id']],
    );
    assert.equal(ofType(resources, 'aws:rds/instance:Instance').length, 2, 'no replica on the rehearsal');
    for (const r of resources) for (const k of lookedUpInputs(r)) assert.ok((r.opts.ignoreChanges ?? []).includes(k), `${r.name}.${k}`);

    const pinned = await build('rehearsal', { aws: { rehearsalSnapshotIdentifier: 'shop-before-upgrade' } });
    assert.equal(
      one(pinned.resources, 'aws:rds/instance:Instance', 'rehearsal-source').inputs['snapshotIdentifier'],
      'shop-before-upgrade',
    );
    assert.ok(!pinned.lookups.includes('aws:rds/getSnapshot:getSnapshot'), 'a named snapshot needs no look-up');
    assert.equal(
      one(pinned.resources, 'aws:rds/instance:Instance', 'rehearsal-source').opts.ignoreChanges,
      undefined,
      'a snapshot named in config is followed when it changes',
    );
    const ami = await build('production', { aws: { workerAmi: 'ami-0pinnedbyuser' } });
    const worker = one(ami.resources, 'aws:ec2/instance:Instance');
    assert.equal(worker.inputs['ami'], 'ami-0pinnedbyuser');
    assert.equal(worker.opts.ignoreChanges, undefined, 'an AMI named in config is followed when it changes');
    assert.ok(!ami.lookups.includes('aws:ec2/getAmi:getAmi'));
  });

  it('heroku stack: bucardo, its control server on the worker (PostgreSQL + PL/Perl + Bucardo), no replication settings on the source', async function () {
    const { resources } = await build('heroku');
    const run = one(resources, 'pulumi-nodejs:dynamic:Resource', 'run').inputs;
    assert.equal(run['strategy'], 'bucardo');
    assert.equal((run['options'] as { bucardoParallelCopy?: boolean }).bucardoParallelCopy, true);
    assert.deepEqual(run['aws'], { region: 'us-east-1' });
    const ud = parse(String(one(resources, 'aws:ec2/instance:Instance').inputs['userData'])) as {
      runcmd: string[][];
      write_files: { path: string }[];
    };
    const cmds = ud.runcmd.map((c) => c.join(' '));
    assert.ok(
      cmds.some((c) => /apt-get install .*postgresql-17 postgresql-plperl-17 bucardo/.test(c)),
      cmds.join('\n'),
    );
    assert.ok(cmds.includes('/usr/local/sbin/pgrelocate-bucardo-control 17'));
    assert.ok(ud.write_files.some((f) => f.path === '/usr/local/sbin/pgrelocate-bucardo-control'));
    // Heroku is not RDS: no parameter group, no security group of the source to open; the worker's disk needs no dump space.
    assert.deepEqual(
      ofType(resources, 'aws:rds/parameterGroup:ParameterGroup').map((r) => r.name),
      ['target-params'],
    );
    assert.deepEqual(ofType(resources, 'aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule'), []);
    assert.equal(one(resources, 'aws:ebs/volume:Volume').inputs['size'], 50);
    assert.deepEqual(sourceIngressFrom('bucardo'), ['worker'], "Bucardo's daemon on the worker is what connects to the source");
  });

  it('dump-restore: the worker disk holds the dump (twice the source); only the worker reaches the source', async function () {
    const { resources } = await build('production', { strategy: 'dump-restore' });
    assert.equal(one(resources, 'aws:ebs/volume:Volume').inputs['size'], 500);
    assert.deepEqual(
      ofType(resources, 'aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule').map((r) => r.inputs['referencedSecurityGroupId']),
      ['worker-sg-id'],
    );
  });

  it('local stack: only the migration run, in-process, no AWS resources', async function () {
    const { resources } = await build('local');
    assert.deepEqual(
      resources.map((r) => r.type),
      ['pulumi-nodejs:dynamic:Resource'],
    );
    assert.equal(resources[0]!.inputs['mode'], 'in-process');
  });

  it('a stack without aws:region, or a missing CLI package, is refused with the fix', function () {
    assert.throws(() => awsAccessOf({}), /aws:region is not set.*Fix: pulumi config set aws:region/);
    assert.deepEqual(awsAccessOf({ region: 'eu-west-1', profile: 'shop', assumeRoles: [{ roleArn: 'arn:aws:iam::1:role/deploy' }] }), {
      region: 'eu-west-1',
      profile: 'shop',
      assumeRoles: [{ roleArn: 'arn:aws:iam::1:role/deploy' }],
    });
    assert.throws(() => awsAccessOf({ region: 'eu-west-1', assumeRoles: [{}] }), /aws:assumeRoles\[0\] has no roleArn/);
    assert.throws(() => readWorkerPackage('/nonexistent/pgrelocate.tgz'), /Fix: run `npm run pack:worker`/);
  });

  it('config errors name each bad key, and keys that were replaced say by what', function () {
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
    const old = () =>
      parseStackConfig({
        mode: 'aws',
        aws: { ...(stackConfig('production')['aws'] as object), region: 'eu-west-1', replicaRegion: 'eu-central-1' },
        postgres: { extensions: ['citext'] },
      });
    assert.throws(old, (e: ConfigError) => {
      const text = e.issues.join('\n');
      assert.match(text, /pgrelocate:aws\.region: no longer a key; .*pulumi config set aws:region/);
      assert.match(text, /pgrelocate:aws\.replicaRegion: no longer a key; set pgrelocate:aws\.replica/);
      assert.match(text, /pgrelocate\.postgres: no longer a key; remove it/);
      return true;
    });
  });

  it('resource options: the target retained, the worker replaceable, look-ups pinned, the run may take two days', function () {
    const parent = {} as pulumi.Resource;
    assert.deepEqual(retainedOptions(parent), {
      parent,
      retainOnDelete: true,
      customTimeouts: { create: '120m', update: '120m', delete: '60m' },
    });
    assert.deepEqual(disposableOptions(parent), { parent, deleteBeforeReplace: true });
    assert.deepEqual(lookupPinnedOptions(['ami']), { ignoreChanges: ['ami'] });
    assert.deepEqual(migrationRunOptions([parent]), { dependsOn: [parent], customTimeouts: { create: '48h', update: '6h', delete: '1h' } });
  });

  it('URL helpers: hosts swapped with credentials kept; the run URL encodes credentials; snapshot names are valid and per stack', function () {
    assert.equal(
      withHost('postgresql://u:p%40ss@old:5432/db?sslmode=require', 'new.host'),
      'postgresql://u:p%40ss@new.host:5432/db?sslmode=require',
    );
    const url = targetRunUrl({ user: 'admin', password: "p@ss/w'rd:%", host: 'h', port: 5432, database: 'shop' });
    assert.equal(decodeURIComponent(new URL(url).password), "p@ss/w'rd:%");
    assert.equal(new URL(url).searchParams.get('sslmode'), 'require');
    assert.equal(finalSnapshotIdentifier('pgrelocate', 'production', 'target'), 'pgrelocate-production-target-final');
    assert.notEqual(
      finalSnapshotIdentifier('pgrelocate', 'staging', 'target'),
      finalSnapshotIdentifier('pgrelocate', 'production', 'target'),
    );
    for (const id of [
      finalSnapshotIdentifier('My_Project', 'org/stack--1', 'target'),
      finalSnapshotIdentifier('1shop', 'x'.repeat(300), 'target'),
    ]) {
      assert.match(id, /^[a-z](?:[a-z0-9]|-(?!-))*$/, id);
      assert.ok(id.length <= 255 && !id.endsWith('-'), id);
    }
  });
});
