/**
 * The migration worker: an EC2 instance reachable only through SSM (no SSH
 * key, no inbound rule), with a data volume of at least twice the source,
 * cloud-config user-data from `renderUserData`, the packed pgrelocate CLI as
 * a private S3 object, and an IAM role that may do what the SSM agent needs,
 * read exactly the two SSM parameters holding the source and target URLs, and
 * read that one object: nothing else.
 */
import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import { childOptions, disposableOptions, lookupPinnedOptions } from './options';
import { ebsGp3 } from './storage';
import { renderUserData, type UserDataArgs } from './userdata';
import type { WorkerPackage } from './worker-package';

export interface MigrationWorkerArgs {
  readonly vpcId: pulumi.Input<string>;
  readonly subnetId: pulumi.Input<string>;
  readonly instanceType: pulumi.Input<string>;
  /** AMI id; default: the latest Debian 13 amd64 AMI when the worker is created (a newer one later does not replace it). */
  readonly ami?: pulumi.Input<string>;
  /** The packed CLI (`readWorkerPackage`), uploaded to the worker's private bucket. */
  readonly cliPackage: WorkerPackage;
  /** The region the worker runs in (for its SSM parameters' KMS condition and the agent's download). */
  readonly region: string;
  /** Size of the data volume in GiB (at least twice the source). */
  readonly dataDiskGb: number;
  /** Source and target URLs (secrets), stored as SSM SecureString parameters. */
  readonly sourceUrl: pulumi.Input<string>;
  readonly targetUrl: pulumi.Input<string>;
  /** Everything the user-data needs except the parameter names, which the worker creates. */
  readonly userData: Omit<UserDataArgs, 'sourceUrlParameter' | 'targetUrlParameter' | 'cliPackage' | 'region'>;
  /** Prefix of the SSM parameter names, e.g. /pgrelocate/production. */
  readonly parameterPrefix: string;
  /** The worker's security group (created first, so the target can admit it): see `workerSecurityGroup`. */
  readonly securityGroup: aws.ec2.SecurityGroup;
}

/** The worker's security group: egress only, no inbound rule at all (SSM needs none). */
export function workerSecurityGroup(name: string, vpcId: pulumi.Input<string>, opts?: pulumi.CustomResourceOptions): aws.ec2.SecurityGroup {
  return new aws.ec2.SecurityGroup(
    name,
    {
      vpcId,
      description: 'pgrelocate worker: egress only (SSM, databases, packages); no inbound',
      ingress: [],
      egress: [{ protocol: '-1', fromPort: 0, toPort: 0, cidrBlocks: ['0.0.0.0/0'], description: 'outbound' }],
    },
    opts,
  );
}

/**
 * What the SSM agent itself calls, as AWS documents for Run Command and Session
 * Manager. These actions take no resource restriction; none of them reads data.
 * (AmazonSSMManagedInstanceCore would add ssm:GetParameter(s) on every parameter.)
 */
export const SSM_AGENT_ACTIONS = [
  'ssm:UpdateInstanceInformation',
  'ssmmessages:CreateControlChannel',
  'ssmmessages:CreateDataChannel',
  'ssmmessages:OpenControlChannel',
  'ssmmessages:OpenDataChannel',
  'ec2messages:AcknowledgeMessage',
  'ec2messages:DeleteMessage',
  'ec2messages:FailMessage',
  'ec2messages:GetEndpoint',
  'ec2messages:GetMessages',
  'ec2messages:SendReply',
] as const;

/**
 * The worker's whole IAM policy: the agent's calls, its two parameters
 * (decrypted through SSM in its region only) and the CLI's S3 object. Pure.
 */
export function workerPolicy(args: { parameterArns: readonly string[]; packageObjectArn: string; region: string }): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      { Sid: 'SsmAgent', Effect: 'Allow', Action: [...SSM_AGENT_ACTIONS], Resource: '*' },
      { Sid: 'UrlParameters', Effect: 'Allow', Action: ['ssm:GetParameter'], Resource: [...args.parameterArns] },
      {
        Sid: 'DecryptThroughSsm',
        Effect: 'Allow',
        Action: ['kms:Decrypt'],
        Resource: '*',
        Condition: { StringEquals: { 'kms:ViaService': `ssm.${args.region}.amazonaws.com` } },
      },
      { Sid: 'CliPackage', Effect: 'Allow', Action: ['s3:GetObject'], Resource: [args.packageObjectArn] },
    ],
  });
}

/** Debian's own AWS account, which publishes the official Debian AMIs. */
export const DEBIAN_AMI_OWNER = '136693071363';

export class MigrationWorker extends pulumi.ComponentResource {
  readonly instance: aws.ec2.Instance;
  readonly securityGroup: aws.ec2.SecurityGroup;
  readonly dataVolume: aws.ebs.Volume;
  readonly role: aws.iam.Role;
  readonly userData: pulumi.Output<string>;

  constructor(name: string, args: MigrationWorkerArgs, opts?: pulumi.ComponentResourceOptions) {
    super('pgrelocate:index:MigrationWorker', name, {}, opts);
    const sourceParam = new aws.ssm.Parameter(
      `${name}-source-url`,
      { name: `${args.parameterPrefix}/source-url`, type: 'SecureString', value: args.sourceUrl },
      childOptions(this),
    );
    const targetParam = new aws.ssm.Parameter(
      `${name}-target-url`,
      { name: `${args.parameterPrefix}/target-url`, type: 'SecureString', value: args.targetUrl },
      childOptions(this),
    );
    // The CLI's tarball: a private, encrypted bucket of this stack's own; destroy empties and removes it.
    const bucket = new aws.s3.Bucket(`${name}-artefacts`, { bucketPrefix: 'pgrelocate-', forceDestroy: true }, childOptions(this));
    new aws.s3.BucketPublicAccessBlock(
      `${name}-artefacts-private`,
      { bucket: bucket.id, blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true },
      childOptions(this),
    );
    const cli = new aws.s3.BucketObjectv2(
      `${name}-cli`,
      {
        bucket: bucket.id,
        key: args.cliPackage.key,
        source: new pulumi.asset.FileAsset(args.cliPackage.file),
        serverSideEncryption: 'AES256',
        checksumAlgorithm: 'SHA256',
      },
      childOptions(this),
    );
    this.role = new aws.iam.Role(
      `${name}-role`,
      {
        assumeRolePolicy: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }],
        }),
        description: 'pgrelocate worker: the SSM agent, its two URL parameters and its CLI package; nothing else',
      },
      childOptions(this),
    );
    new aws.iam.RolePolicy(
      `${name}-policy`,
      {
        role: this.role.id,
        policy: pulumi
          .all([sourceParam.arn, targetParam.arn, cli.arn])
          .apply(([s, t, o]) => workerPolicy({ parameterArns: [s, t], packageObjectArn: o, region: args.region })),
      },
      childOptions(this),
    );
    const profile = new aws.iam.InstanceProfile(`${name}-profile`, { role: this.role.name }, childOptions(this));
    this.securityGroup = args.securityGroup;
    const ami =
      args.ami ??
      aws.ec2
        .getAmiOutput(
          {
            mostRecent: true,
            owners: [DEBIAN_AMI_OWNER],
            filters: [
              { name: 'name', values: ['debian-13-amd64-*'] },
              { name: 'architecture', values: ['x86_64'] },
            ],
          },
          { parent: this },
        )
        .apply((a) => a.id);
    this.userData = pulumi.all([sourceParam.name, targetParam.name, bucket.bucket]).apply(([s, t, b]) =>
      renderUserData({
        ...args.userData,
        region: args.region,
        sourceUrlParameter: s,
        targetUrlParameter: t,
        cliPackage: { bucket: b, key: args.cliPackage.key, sha256: args.cliPackage.sha256 },
      }),
    );
    this.instance = new aws.ec2.Instance(
      `${name}-instance`,
      {
        ami,
        instanceType: args.instanceType,
        subnetId: args.subnetId,
        vpcSecurityGroupIds: [this.securityGroup.id],
        iamInstanceProfile: profile.name,
        userData: this.userData,
        userDataReplaceOnChange: true,
        metadataOptions: { httpTokens: 'required', httpEndpoint: 'enabled' },
        rootBlockDevice: { volumeSize: 20, volumeType: 'gp3', encrypted: true },
        tags: { Name: `pgrelocate-${name}` },
      },
      // A looked-up AMI (mostRecent) is pinned: Debian's next image must not replace a worker mid-run. One named in config is followed.
      { ...disposableOptions(this), ...(args.ami ? {} : lookupPinnedOptions(['ami'])), dependsOn: [cli] },
    );
    this.dataVolume = new aws.ebs.Volume(
      `${name}-data`,
      {
        availabilityZone: this.instance.availabilityZone,
        ...ebsGp3(args.dataDiskGb),
        encrypted: true,
      },
      disposableOptions(this),
    );
    new aws.ec2.VolumeAttachment(
      `${name}-data-attach`,
      { deviceName: '/dev/sdf', volumeId: this.dataVolume.id, instanceId: this.instance.id },
      disposableOptions(this),
    );
    this.registerOutputs({ instanceId: this.instance.id, securityGroupId: this.securityGroup.id });
  }
}
