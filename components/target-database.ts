/**
 * The target: an RDS PostgreSQL instance with its subnet group, security
 * group and parameter group, storage sized from the source, kept by `pulumi
 * destroy` (retainOnDelete) with deletion protection, a final snapshot named
 * for the stack; optionally an encrypted read replica in a second region.
 */
import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import * as random from '@pulumi/random';
import { childOptions, retainedOptions } from './options';
import type { PulumiStrategy } from './run-driver';
import { parameterGroupFamily, targetBulkLoadParameters, targetProductionParameters, type DbParameter } from './parameters';
import { rdsGp3 } from './storage';

export interface ReplicaArgs {
  /** The second region. */
  readonly region: string;
  /** Subnets of a VPC in that region (at least two availability zones), for the replica's subnet group. */
  readonly subnetIds: readonly string[];
  /** A KMS key in that region for the replica's storage; default: a key the stack creates there. */
  readonly kmsKeyId?: string;
}

export interface TargetDatabaseArgs {
  /** PostgreSQL version, e.g. "17" or "16.4". */
  readonly engineVersion: pulumi.Input<string>;
  readonly instanceClass: pulumi.Input<string>;
  /** Allocated storage in GiB (source size plus headroom). */
  readonly storageGb: number;
  readonly vpcId: pulumi.Input<string>;
  readonly subnetIds: pulumi.Input<pulumi.Input<string>[]>;
  /** Security groups allowed to connect on 5432 (the worker's). */
  readonly allowedSecurityGroupIds: pulumi.Input<string>[];
  /** CIDRs allowed to connect on 5432; never 0.0.0.0/0. */
  readonly allowedCidrs: readonly string[];
  readonly masterUsername: pulumi.Input<string>;
  /** The master password; generated when absent. */
  readonly masterPassword?: pulumi.Input<string>;
  /** The migrated database: RDS creates it with the instance, owned by the master user. */
  readonly databaseName: pulumi.Input<string>;
  readonly multiAz?: pulumi.Input<boolean>;
  /** `sync`: bulk-load parameters; `cutover`: production parameters. */
  readonly phase: 'sync' | 'cutover';
  /** The migration strategy (pglogical needs its library preloaded on the target). */
  readonly strategy?: PulumiStrategy;
  /** The final snapshot's name, unique to the stack (see `finalSnapshotIdentifier`). */
  readonly finalSnapshotIdentifier: string;
  /** A read replica in a second region. */
  readonly replica?: ReplicaArgs;
}

/** The parameters for a phase (and strategy: pglogical must be preloaded). Pure. */
export function targetParameters(phase: 'sync' | 'cutover', strategy = 'logical'): DbParameter[] {
  return phase === 'sync' ? targetBulkLoadParameters(strategy) : targetProductionParameters(strategy);
}

/**
 * The parameter group's description. Fixed: RDS cannot change a description,
 * so a description that named the phase would replace the group at cutover, and
 * a newly associated group takes effect only after a reboot nothing does.
 */
export const TARGET_PARAMETER_GROUP_DESCRIPTION = 'pgrelocate target: bulk-load settings during the sync, production ones after cutover';

/**
 * A DB snapshot identifier for the stack's final snapshot: letters, digits and
 * single hyphens, starting with a letter, at most 255 characters, so two
 * stacks (or two projects) never collide. Pure.
 */
export function finalSnapshotIdentifier(project: string, stack: string, name: string): string {
  const id = `${project}-${stack}-${name}-final`
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^[^a-z]+/, '')
    .slice(0, 255)
    .replace(/-+$/, '');
  return id || 'pgrelocate-final';
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
    let storage: ReturnType<typeof rdsGp3>;
    try {
      storage = rdsGp3(args.storageGb);
    } catch (e) {
      throw new pulumi.ResourceError((e as Error).message, this);
    }
    const subnets = new aws.rds.SubnetGroup(
      `${name}-subnets`,
      { subnetIds: args.subnetIds, description: 'pgrelocate target' },
      retainedOptions(this),
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
      retainedOptions(this),
    );
    this.parameterGroup = new aws.rds.ParameterGroup(
      `${name}-params`,
      {
        family: pulumi.output(args.engineVersion).apply(parameterGroupFamily),
        description: TARGET_PARAMETER_GROUP_DESCRIPTION,
        parameters: targetParameters(args.phase, args.strategy).map((p) => ({ name: p.name, value: p.value, applyMethod: p.applyMethod })),
      },
      retainedOptions(this),
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
        ...storage,
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
        finalSnapshotIdentifier: args.finalSnapshotIdentifier,
        backupRetentionPeriod: 7,
        applyImmediately: true,
        autoMinorVersionUpgrade: true,
        performanceInsightsEnabled: true,
      },
      retainedOptions(this),
    );
    if (args.replica) this.replica = this.crossRegionReplica(name, args.instanceClass, args.replica);
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

  /**
   * An encrypted cross-region replica: RDS needs a KMS key and a subnet group
   * of the destination region (the source's are regional), so both are made
   * there through a provider for that region.
   */
  private crossRegionReplica(name: string, instanceClass: pulumi.Input<string>, r: ReplicaArgs): aws.rds.Instance {
    const regional = new aws.Provider(`${name}-replica-region`, { region: r.region as aws.Region }, childOptions(this));
    const inRegion = { ...retainedOptions(this), provider: regional };
    const kmsKeyId =
      r.kmsKeyId ??
      new aws.kms.Key(
        `${name}-replica-key`,
        { description: 'pgrelocate: storage encryption of the target read replica', enableKeyRotation: true, deletionWindowInDays: 30 },
        inRegion,
      ).arn;
    const subnets = new aws.rds.SubnetGroup(
      `${name}-replica-subnets`,
      { subnetIds: [...r.subnetIds], description: 'pgrelocate target read replica' },
      inRegion,
    );
    return new aws.rds.Instance(
      `${name}-replica`,
      {
        replicateSourceDb: this.instance.arn,
        instanceClass,
        storageEncrypted: true,
        kmsKeyId,
        dbSubnetGroupName: subnets.name,
        publiclyAccessible: false,
        deletionProtection: true,
        skipFinalSnapshot: true,
      },
      inRegion,
    );
  }
}
