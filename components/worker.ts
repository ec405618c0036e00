/**
 * The migration worker: an EC2 instance reachable only through SSM (no SSH
 * key, no inbound rule), with a data volume of at least twice the source,
 * cloud-config user-data from `renderUserData`, and an IAM role that may read
 * exactly the two SSM parameters holding the source and target URLs.
 */
import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import { childOptions, disposableOptions } from './options';
import { renderUserData, type UserDataArgs } from './userdata';

export interface MigrationWorkerArgs {
  readonly vpcId: pulumi.Input<string>;
  readonly subnetId: pulumi.Input<string>;
  readonly instanceType: pulumi.Input<string>;
  /** AMI id; default: the latest Debian 13 amd64 AMI. */
  readonly ami?: pulumi.Input<string>;
  /** Size of the data volume in GiB (at least twice the source). */
  readonly dataDiskGb: number;
  /** Source and target URLs (secrets), stored as SSM SecureString parameters. */
  readonly sourceUrl: pulumi.Input<string>;
  readonly targetUrl: pulumi.Input<string>;
  /** Everything the user-data needs except the parameter names, which the worker creates. */
  readonly userData: Omit<UserDataArgs, 'sourceUrlParameter' | 'targetUrlParameter'>;
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

/** The IAM policy that lets the worker read its two parameters, and nothing else of SSM Parameter Store. Pure. */
export function parameterReadPolicy(parameterArns: readonly string[]): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Action: ['ssm:GetParameter'], Resource: [...parameterArns] },
      { Effect: 'Allow', Action: ['kms:Decrypt'], Resource: '*', Condition: { StringEquals: { 'kms:ViaService': 'ssm.*.amazonaws.com' } } },
    ],
  });
}

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
    this.role = new aws.iam.Role(
      `${name}-role`,
      {
        assumeRolePolicy: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }],
        }),
        description: 'pgrelocate worker: SSM session manager and its two URL parameters',
      },
      childOptions(this),
    );
    new aws.iam.RolePolicyAttachment(
      `${name}-ssm-core`,
      { role: this.role.name, policyArn: 'arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore' },
      childOptions(this),
    );
    new aws.iam.RolePolicy(
      `${name}-read-urls`,
      { role: this.role.id, policy: pulumi.all([sourceParam.arn, targetParam.arn]).apply((arns) => parameterReadPolicy(arns)) },
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
            owners: ['136693071363'],
            filters: [
              { name: 'name', values: ['debian-13-amd64-*'] },
              { name: 'architecture', values: ['x86_64'] },
            ],
          },
          { parent: this },
        )
        .apply((a) => a.id);
    this.userData = pulumi
      .all([sourceParam.name, targetParam.name])
      .apply(([s, t]) => renderUserData({ ...args.userData, sourceUrlParameter: s, targetUrlParameter: t }));
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
      disposableOptions(this),
    );
    this.dataVolume = new aws.ebs.Volume(
      `${name}-data`,
      {
        availabilityZone: this.instance.availabilityZone,
        size: args.dataDiskGb,
        type: 'gp3',
        throughput: 500,
        iops: 6000,
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
