/**
 * The target: an RDS PostgreSQL instance with its subnet group, security
 * group and parameter group, storage sized from the source, protected, with a
 * final snapshot on delete; optionally a read replica in a second region.
 */
import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import * as random from '@pulumi/random';
import { childOptions, protectedOptions } from './options';
import type { PulumiStrategy } from './run-driver';
import { parameterGroupFamily, targetBulkLoadParameters, targetProductionParameters, type DbParameter } from './parameters';

export interface TargetDatabaseArgs {
  /** PostgreSQL version, e.g. "17" or "16.4". */
  readonly engineVersion: pulumi.Input<string>;
  readonly instanceClass: pulumi.Input<string>;
  /** Allocated storage in GiB (source size plus headroom). */
  readonly storageGb: pulumi.Input<number>;
  readonly vpcId: pulumi.Input<string>;
  readonly subnetIds: pulumi.Input<pulumi.Input<string>[]>;
  /** Security groups allowed to connect on 5432 (the worker's). */
  readonly allowedSecurityGroupIds: pulumi.Input<string>[];
  /** CIDRs allowed to connect on 5432; never 0.0.0.0/0. */
  readonly allowedCidrs: readonly string[];
  readonly masterUsername: pulumi.Input<string>;
  /** The master password; generated when absent. */
  readonly masterPassword?: pulumi.Input<string>;
  readonly databaseName: pulumi.Input<string>;
  readonly multiAz?: pulumi.Input<boolean>;
  /** `sync`: bulk-load parameters; `cutover`: production parameters. */
  readonly phase: 'sync' | 'cutover';
  /** The migration strategy (pglogical needs its library preloaded on the target). */
  readonly strategy?: PulumiStrategy;
  /** A second region for a read replica. */
  readonly replicaRegion?: string;
}

/** The parameters for a phase (and strategy: pglogical must be preloaded). Pure. */
export function targetParameters(phase: 'sync' | 'cutover', strategy = 'logical'): DbParameter[] {
  return phase === 'sync' ? targetBulkLoadParameters(strategy) : targetProductionParameters(strategy);
}

export class TargetDatabase extends pulumi.ComponentResource {
  readonly instance: aws.rds.Instance;
  readonly securityGroup: aws.ec2.SecurityGroup;
  readonly parameterGroup: aws.rds.ParameterGroup;
  readonly replica?: aws.rds.Instance;
  readonly address: pulumi.Output<string>;
  readonly port: pulumi.Output<number>;
  readonly password: pulumi.Output<string>;

  constructor(name: string, args: TargetDatabaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super('pgrelocate:index:TargetDatabase', name, {}, opts);
    for (const c of args.allowedCidrs) {
      if (/\/0$/.test(c))
        throw new pulumi.ResourceError(
          `allowedCidrs must not contain ${c}: the database is never open to the whole internet. Fix: list the worker's and the application's CIDRs.`,
          this,
        );
    }
    const subnets = new aws.rds.SubnetGroup(
      `${name}-subnets`,
      { subnetIds: args.subnetIds, description: 'pgrelocate target' },
      childOptions(this),
    );
    this.securityGroup = new aws.ec2.SecurityGroup(
      `${name}-sg`,
      {
        vpcId: args.vpcId,
        description: 'pgrelocate target: PostgreSQL from the worker and named networks only',
        ingress: [
          ...args.allowedSecurityGroupIds.map((sg) => ({
            protocol: 'tcp',
            fromPort: 5432,
            toPort: 5432,
            securityGroups: [sg],
            description: 'pgrelocate worker',
          })),
          ...args.allowedCidrs.map((cidr) => ({
            protocol: 'tcp',
            fromPort: 5432,
            toPort: 5432,
            cidrBlocks: [cidr],
            description: 'allowed network',
          })),
        ],
        egress: [{ protocol: '-1', fromPort: 0, toPort: 0, cidrBlocks: ['0.0.0.0/0'], description: 'replication to the source, updates' }],
      },
      childOptions(this),
    );
    this.parameterGroup = new aws.rds.ParameterGroup(
      `${name}-params`,
      {
        family: pulumi.output(args.engineVersion).apply(parameterGroupFamily),
        description: `pgrelocate target (${args.phase === 'sync' ? 'bulk load' : 'production'})`,
        parameters: targetParameters(args.phase, args.strategy).map((p) => ({ name: p.name, value: p.value, applyMethod: p.applyMethod })),
      },
      childOptions(this),
    );
    const password =
      args.masterPassword !== undefined
        ? pulumi.secret(args.masterPassword)
        : new random.RandomPassword(`${name}-password`, { length: 32, special: false }, childOptions(this)).result;
    this.instance = new aws.rds.Instance(
      `${name}-db`,
      {
        engine: 'postgres',
        engineVersion: args.engineVersion,
        instanceClass: args.instanceClass,
        allocatedStorage: args.storageGb,
        storageType: 'gp3',
        storageEncrypted: true,
        dbName: args.databaseName,
        username: args.masterUsername,
        password,
        dbSubnetGroupName: subnets.name,
        vpcSecurityGroupIds: [this.securityGroup.id],
        parameterGroupName: this.parameterGroup.name,
        multiAz: args.multiAz ?? false,
        publiclyAccessible: false,
        deletionProtection: true,
        skipFinalSnapshot: false,
        finalSnapshotIdentifier: `${name}-final`,
        backupRetentionPeriod: 7,
        applyImmediately: true,
        autoMinorVersionUpgrade: true,
        performanceInsightsEnabled: true,
      },
      protectedOptions(this),
    );
    if (args.replicaRegion) {
      const regional = new aws.Provider(`${name}-replica-region`, { region: args.replicaRegion as aws.Region }, childOptions(this));
      this.replica = new aws.rds.Instance(
        `${name}-replica`,
        {
          replicateSourceDb: this.instance.arn,
          instanceClass: args.instanceClass,
          storageEncrypted: true,
          publiclyAccessible: false,
          deletionProtection: true,
          skipFinalSnapshot: true,
        },
        { ...protectedOptions(this), provider: regional },
      );
    }
    this.address = this.instance.address;
    this.port = this.instance.port;
    this.password = pulumi.secret(password);
    this.registerOutputs({
      address: this.address,
      port: this.port,
      parameterGroup: this.parameterGroup.name,
      replica: this.replica?.address,
    });
  }
}
