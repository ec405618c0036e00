/**
 * The program's composition, as a function of validated config and secrets,
 * so tests can build every stack example under mocks. `index.ts` only reads
 * the stack configuration and calls this.
 */
import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import { majorOf, targetStorageGb, workerDiskGb, type StackConfig } from './config';
import { DatabaseObjects } from './database-objects';
import { MigrationRun } from './migration-run';
import { migrationRunOptions } from './options';
import { needsReboot, sourceReplicationParameters } from './parameters';
import { TargetDatabase } from './target-database';
import { MigrationWorker, workerSecurityGroup } from './worker';

export interface StackSecrets {
  /** pgrelocate:sourceUrl */
  readonly sourceUrl: pulumi.Output<string>;
  /** pgrelocate:targetUrl (mode local) */
  readonly targetUrl?: pulumi.Output<string>;
  /** pgrelocate:targetPassword (mode aws; generated when absent) */
  readonly targetPassword?: pulumi.Output<string>;
  /** pgrelocate:sourceAdminUrl, when postgres.manageSourceRole */
  readonly sourceAdminUrl?: pulumi.Output<string>;
}

export interface StackOutputs {
  readonly status: pulumi.Output<string>;
  readonly blackoutSeconds: pulumi.Output<number | null>;
  readonly copySeconds: pulumi.Output<number | null>;
  /** Where the application connects after cutover (secret). */
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

/** Parts of a postgres URL, for the postgresql provider. Pure. */
export function urlParts(url: string): { host: string; port: number; username: string; password: string; database: string } {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port || 5432),
    username: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database: decodeURIComponent(u.pathname.slice(1)) || 'postgres',
  };
}

export function buildStack(cfg: StackConfig, secrets: StackSecrets): StackOutputs {
  const runArgs = {
    strategy: cfg.strategy,
    phase: cfg.phase,
    options: cfg.options,
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
  const stack = pulumi.getStack();
  const region = a.region;
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

  // Rehearsal: migrate a restore of the source's latest snapshot, not the source.
  let sourceUrl = secrets.sourceUrl;
  if (a.rehearsal) {
    if (!a.sourceInstanceIdentifier)
      throw new pulumi.RunError(
        'pgrelocate:aws.sourceInstanceIdentifier is required for a rehearsal stack. Fix: set it to the source RDS instance to restore from.',
      );
    const snap = aws.rds.getSnapshotOutput({ dbInstanceIdentifier: a.sourceInstanceIdentifier, mostRecent: true });
    const copySg = new aws.ec2.SecurityGroup('rehearsal-source-sg', {
      vpcId: a.vpcId,
      description: 'pgrelocate rehearsal source: PostgreSQL from the worker only',
      ingress: [{ protocol: 'tcp', fromPort: 5432, toPort: 5432, securityGroups: [workerSg.id], description: 'pgrelocate worker' }],
      egress: [{ protocol: '-1', fromPort: 0, toPort: 0, cidrBlocks: ['0.0.0.0/0'] }],
    });
    const copySubnets = new aws.rds.SubnetGroup('rehearsal-source-subnets', { subnetIds: a.subnetIds });
    const copy = new aws.rds.Instance('rehearsal-source', {
      snapshotIdentifier: snap.id,
      instanceClass: a.instanceClass,
      dbSubnetGroupName: copySubnets.name,
      vpcSecurityGroupIds: [copySg.id],
      ...(sourceGroup ? { parameterGroupName: sourceGroup.name } : {}),
      publiclyAccessible: false,
      skipFinalSnapshot: true,
      deletionProtection: false,
      applyImmediately: true,
    });
    sourceUrl = pulumi.secret(pulumi.all([secrets.sourceUrl, copy.address]).apply(([u, host]) => withHost(u, host)));
  }

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
    databaseName: 'postgres',
    multiAz: a.multiAz,
    phase: cfg.phase,
    strategy: cfg.strategy,
    ...(a.replicaRegion ? { replicaRegion: a.replicaRegion } : {}),
  });

  const sourceAdmin = secrets.sourceAdminUrl && cfg.postgres.manageSourceRole ? secrets.sourceAdminUrl.apply(urlParts) : undefined;
  const objects = new DatabaseObjects('db', {
    target: { host: target.address, port: target.port, username: a.masterUsername, password: target.password, database: 'postgres' },
    databaseName: a.databaseName,
    extensions: cfg.postgres.extensions,
    adminRole: 'rds_superuser',
    ...(sourceAdmin
      ? {
          source: {
            host: sourceAdmin.host,
            port: sourceAdmin.port,
            username: sourceAdmin.username,
            password: pulumi.secret(sourceAdmin.password),
            database: sourceAdmin.database,
            isRds: Boolean(a.sourceInstanceIdentifier),
          },
        }
      : {}),
  });
  const targetUrl = pulumi.secret(
    pulumi.interpolate`postgresql://pgrelocate:${objects.migrationPassword}@${target.address}:${target.port}/${a.databaseName}?sslmode=require`,
  );

  const worker = new MigrationWorker('worker', {
    vpcId: a.vpcId,
    subnetId: a.subnetIds[0]!,
    instanceType: a.workerInstanceType,
    ...(a.workerAmi ? { ami: a.workerAmi } : {}),
    dataDiskGb: workerDiskGb(a),
    sourceUrl,
    targetUrl,
    securityGroup: workerSg,
    parameterPrefix: `/pgrelocate/${stack}`,
    userData: { clientMajor: majorOf(a.engineVersion), strategy: cfg.strategy, pgrelocatePackage: a.pgrelocatePackage, region },
  });

  const run = new MigrationRun(
    'run',
    { ...runArgs, source: sourceUrl, target: targetUrl, mode: 'ssm', workerInstanceId: worker.instance.id, region },
    migrationRunOptions([worker, objects, target]),
  );
  if (cfg.postgres.applicationRoles.length > 0) objects.grantApplicationRoles(cfg.postgres.applicationRoles, run);

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
