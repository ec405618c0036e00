/**
 * The program's composition, as a function of validated config and secrets,
 * so tests can build every stack example under mocks. `index.ts` only reads
 * the stack configuration and calls this.
 */
import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import { awsAccessOf, type AwsAccess } from './aws-access';
import { majorOf, targetStorageGb, workerDiskGb, type StackConfig } from './config';
import { MigrationRun } from './migration-run';
import { lookupPinnedOptions, migrationRunOptions } from './options';
import { needsReboot, sourceReplicationParameters } from './parameters';
import { finalSnapshotIdentifier, TargetDatabase } from './target-database';
import { MigrationWorker, workerSecurityGroup } from './worker';
import { readWorkerPackage } from './worker-package';

export interface StackSecrets {
  /** pgrelocate:sourceUrl */
  readonly sourceUrl: pulumi.Output<string>;
  /** pgrelocate:targetUrl (mode local) */
  readonly targetUrl?: pulumi.Output<string>;
  /** pgrelocate:targetPassword (mode aws; generated when absent) */
  readonly targetPassword?: pulumi.Output<string>;
}

export interface StackOutputs {
  readonly status: pulumi.Output<string>;
  readonly blackoutSeconds: pulumi.Output<number | null>;
  readonly copySeconds: pulumi.Output<number | null>;
  /** Where the application connects after cutover: host, port, database, TLS; the application keeps its own role. */
  readonly connectionString: pulumi.Output<string>;
  readonly targetAddress?: pulumi.Output<string>;
  readonly workerInstanceId?: pulumi.Output<string>;
  readonly sourceParameterGroup?: pulumi.Output<string>;
  readonly sourceRebootRequired?: boolean;
}

/** Replace the host (and optionally the database) of a URL. Pure. */
export function withHost(url: string, host: string, port?: number): string {
  const u = new URL(url);
  u.hostname = host;
  if (port) u.port = String(port);
  return u.toString();
}

/** The run's URL of the target: its master user (in rds_superuser: it may create subscriptions), over TLS. Pure. */
export function targetRunUrl(parts: { user: string; password: string; host: string; port: number; database: string }): string {
  const u = new URL('postgresql://localhost');
  u.username = encodeURIComponent(parts.user);
  u.password = encodeURIComponent(parts.password);
  u.hostname = parts.host;
  u.port = String(parts.port);
  u.pathname = `/${encodeURIComponent(parts.database)}`;
  u.searchParams.set('sslmode', 'require');
  return u.toString();
}

/**
 * Which security groups must reach the source on 5432: the worker always (it
 * reads the schema and, for dump-restore, the data; Bucardo's daemon runs
 * there); for logical and pglogical also the target, whose subscription
 * connects to the source. Pure.
 */
export function sourceIngressFrom(strategy: StackConfig['strategy']): ('worker' | 'target')[] {
  return strategy === 'logical' || strategy === 'pglogical' ? ['worker', 'target'] : ['worker'];
}

/**
 * Whether the target admits the source: only for the way back (a cutover with
 * options.rollback), whose subscription on the old source connects to the new
 * server. Pure.
 */
export function admitsSourceOnTarget(strategy: StackConfig['strategy'], options: StackConfig['options']): boolean {
  return strategy !== 'dump-restore' && options.rollback === true;
}

/** What the stack runs with besides its configuration: the aws provider's access (mode aws). */
export interface StackEnvironment {
  readonly aws?: AwsAccess;
}

export function buildStack(cfg: StackConfig, secrets: StackSecrets, env: StackEnvironment = {}): StackOutputs {
  const runArgs = {
    strategy: cfg.strategy,
    phase: cfg.phase,
    options: cfg.options,
    ...(cfg.databases ? { databases: cfg.databases } : {}),
  };
  if (cfg.mode === 'local') {
    if (!secrets.targetUrl)
      throw new pulumi.RunError('pgrelocate:targetUrl is required for mode local. Fix: pulumi config set --secret pgrelocate:targetUrl …');
    const run = new MigrationRun(
      'run',
      { ...runArgs, source: secrets.sourceUrl, target: secrets.targetUrl, mode: 'in-process' },
      { customTimeouts: { create: '48h', update: '6h', delete: '1h' } },
    );
    return { status: run.status, blackoutSeconds: run.blackoutSeconds, copySeconds: run.copySeconds, connectionString: run.newTargetUrl };
  }
  const a = cfg.aws!;
  // Without the aws provider's settings, awsAccessOf names the missing aws:region and its fix.
  const access = env.aws ?? awsAccessOf({});
  const stack = pulumi.getStack();
  const workerSg = workerSecurityGroup('worker-sg', a.vpcId);

  // Source replication settings, when the source is RDS and pgrelocate may create its parameter group.
  const sourceParams = sourceReplicationParameters(cfg.strategy);
  const sourceGroup =
    a.sourceParameterGroupFamily && sourceParams.length > 0
      ? new aws.rds.ParameterGroup('source-params', {
          family: a.sourceParameterGroupFamily,
          description: 'pgrelocate: logical replication on the source (attach to the source and reboot)',
          parameters: sourceParams.map((p) => ({ name: p.name, value: p.value, applyMethod: p.applyMethod })),
        })
      : undefined;

  const target = new TargetDatabase('target', {
    engineVersion: a.engineVersion,
    instanceClass: a.instanceClass,
    storageGb: targetStorageGb(a),
    vpcId: a.vpcId,
    subnetIds: a.subnetIds,
    allowedSecurityGroupIds: [workerSg.id],
    allowedCidrs: a.allowedCidrs,
    masterUsername: a.masterUsername,
    ...(secrets.targetPassword ? { masterPassword: secrets.targetPassword } : {}),
    databaseName: a.databaseName,
    multiAz: a.multiAz,
    // Rolled back, the target keeps its production settings: it may be cut over to again by a new stack.
    phase: cfg.phase === 'sync' ? 'sync' : 'cutover',
    strategy: cfg.strategy,
    finalSnapshotIdentifier: finalSnapshotIdentifier(pulumi.getProject(), stack, 'target'),
    ...(a.replica ? { replica: a.replica } : {}),
  });
  const reachSource = { worker: workerSg.id, target: target.securityGroup.id };

  // Rehearsal: migrate a restore of the source's snapshot, not the source.
  let sourceUrl = secrets.sourceUrl;
  /** The source's security group, where the stack knows it: the way back (options.rollback) admits it on the target. */
  let sourceSg: pulumi.Input<string> | undefined = a.sourceSecurityGroupId;
  if (a.rehearsal) {
    if (!a.sourceInstanceIdentifier)
      throw new pulumi.RunError(
        'pgrelocate:aws.sourceInstanceIdentifier is required for a rehearsal stack. Fix: set it to the source RDS instance to restore from.',
      );
    const snapshotId =
      a.rehearsalSnapshotIdentifier ??
      aws.rds.getSnapshotOutput({ dbInstanceIdentifier: a.sourceInstanceIdentifier, mostRecent: true }).apply((s) => s.id);
    const copySg = new aws.ec2.SecurityGroup('rehearsal-source-sg', {
      vpcId: a.vpcId,
      description: 'pgrelocate rehearsal source: PostgreSQL from the worker and the target only',
      ingress: sourceIngressFrom(cfg.strategy).map((from) => ({
        protocol: 'tcp',
        fromPort: 5432,
        toPort: 5432,
        securityGroups: [reachSource[from]],
        description: `pgrelocate ${from}`,
      })),
      egress: [{ protocol: '-1', fromPort: 0, toPort: 0, cidrBlocks: ['0.0.0.0/0'] }],
    });
    sourceSg = copySg.id;
    const copySubnets = new aws.rds.SubnetGroup('rehearsal-source-subnets', { subnetIds: a.subnetIds });
    const copy = new aws.rds.Instance(
      'rehearsal-source',
      {
        snapshotIdentifier: snapshotId,
        instanceClass: a.instanceClass,
        dbSubnetGroupName: copySubnets.name,
        vpcSecurityGroupIds: [copySg.id],
        ...(sourceGroup ? { parameterGroupName: sourceGroup.name } : {}),
        publiclyAccessible: false,
        skipFinalSnapshot: true,
        deletionProtection: false,
        applyImmediately: true,
      },
      // The latest snapshot changes daily: the copy keeps the one it was restored from (a snapshot named in config is followed).
      a.rehearsalSnapshotIdentifier ? {} : lookupPinnedOptions(['snapshotIdentifier']),
    );
    sourceUrl = pulumi.secret(pulumi.all([secrets.sourceUrl, copy.address]).apply(([u, host]) => withHost(u, host)));
  } else if (a.sourceSecurityGroupId) {
    // The live source in this VPC: admit the worker (and the target's subscription) while the stack lives.
    for (const from of sourceIngressFrom(cfg.strategy)) {
      new aws.vpc.SecurityGroupIngressRule(`source-from-${from}`, {
        securityGroupId: a.sourceSecurityGroupId,
        referencedSecurityGroupId: reachSource[from],
        ipProtocol: 'tcp',
        fromPort: 5432,
        toPort: 5432,
        description: `pgrelocate ${from} (removed by pulumi destroy)`,
      });
    }
  }

  // The way back: the old source subscribes to the new server, so the target admits it (a source outside the VPC: allowedCidrs).
  if (admitsSourceOnTarget(cfg.strategy, cfg.options) && sourceSg)
    new aws.vpc.SecurityGroupIngressRule('target-from-source', {
      securityGroupId: target.securityGroup.id,
      referencedSecurityGroupId: sourceSg,
      ipProtocol: 'tcp',
      fromPort: 5432,
      toPort: 5432,
      description: 'pgrelocate: the old source subscribes for the way back (removed by pulumi destroy)',
    });

  const targetUrl = pulumi.secret(
    pulumi
      .all([target.password, target.address, target.port])
      .apply(([password, host, port]) => targetRunUrl({ user: a.masterUsername, password, host, port, database: a.databaseName })),
  );

  const worker = new MigrationWorker('worker', {
    vpcId: a.vpcId,
    subnetId: a.subnetIds[0]!,
    instanceType: a.workerInstanceType,
    ...(a.workerAmi ? { ami: a.workerAmi } : {}),
    dataDiskGb: workerDiskGb(a, cfg.strategy),
    sourceUrl,
    targetUrl,
    securityGroup: workerSg,
    parameterPrefix: `/pgrelocate/${stack}`,
    cliPackage: readWorkerPackage(a.workerPackage),
    region: access.region,
    userData: { clientMajor: majorOf(a.engineVersion), strategy: cfg.strategy },
  });

  const run = new MigrationRun(
    'run',
    { ...runArgs, source: sourceUrl, target: targetUrl, mode: 'ssm', workerInstanceId: worker.instance.id, aws: access },
    migrationRunOptions([worker, target]),
  );

  return {
    status: run.status,
    blackoutSeconds: run.blackoutSeconds,
    copySeconds: run.copySeconds,
    connectionString: run.newTargetUrl,
    targetAddress: target.address,
    workerInstanceId: worker.instance.id,
    ...(sourceGroup ? { sourceParameterGroup: sourceGroup.name, sourceRebootRequired: needsReboot(sourceParams) } : {}),
  };
}
