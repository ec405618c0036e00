/**
 * Stack configuration (`pgrelocate:*` keys in stacks/Pulumi.<stack>.yaml),
 * validated with zod so every bad key gets its own message. Secrets (the
 * source and target URLs, the target password) are read with
 * `pulumi config set --secret` and never pass through here as plain text.
 */
import { z } from 'zod';
import { pulumiOptionsSchema } from '../engine/options';

const cidr = z
  .string()
  .regex(/^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$/, 'an IPv4 CIDR such as 10.0.0.0/16')
  .refine((c) => !/\/0$/.test(c), 'a CIDR narrower than /0: the database is never open to the whole internet');

/** `pgrelocate:options`: the options table's Pulumi options (engine/options.ts), no others. */
export const RunOptionsSchema = pulumiOptionsSchema();

export const ReplicaSchema = z
  .object({
    /** The second region. */
    region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'an AWS region such as eu-central-1'),
    /** Subnets of a VPC in that region, in two availability zones at least (the replica's subnet group). */
    subnetIds: z
      .array(z.string().startsWith('subnet-'))
      .min(2, 'at least 2 subnets of the replica region, in different availability zones'),
    /** A KMS key of that region for the replica's storage; default: one the stack creates there. */
    kmsKeyId: z.string().min(1).optional(),
  })
  .strict();

export const AwsSchema = z
  .object({
    vpcId: z.string().startsWith('vpc-'),
    subnetIds: z
      .array(z.string().startsWith('subnet-'))
      .min(2, 'at least 2 subnets in different availability zones (RDS subnet groups need two)'),
    /** Extra CIDRs allowed to reach the target on 5432 (the worker is always allowed). */
    allowedCidrs: z.array(cidr).default([]),
    /** The source's size on disk, in GiB: sizes the target's storage and the worker's disk. */
    sourceSizeGb: z.number().positive(),
    storageHeadroomPercent: z.number().min(0).max(400).default(30),
    // YAML reads `engineVersion: 17` as a number: unambiguous, so taken as "17".
    engineVersion: z
      .union([z.string(), z.number().transform(String)])
      .pipe(z.string().regex(/^\d+(\.\d+)?$/, 'a PostgreSQL version such as 17 or 16.4')),
    instanceClass: z.string().startsWith('db.'),
    multiAz: z.boolean().default(false),
    masterUsername: z
      .string()
      .regex(/^[a-z][a-z0-9_]{0,62}$/)
      .default('pgrelocate_admin'),
    databaseName: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/)
      .default('app'),
    workerInstanceType: z.string().default('m6i.xlarge'),
    /** An AMI for the worker (Debian 13, amd64); default: the newest Debian 13 AMI when the worker is created. */
    workerAmi: z.string().startsWith('ami-').optional(),
    /** The packed CLI the worker unpacks (`npm run pack:worker`); default: dist/worker/pgrelocate-<version>.tgz. */
    workerPackage: z.string().min(1).optional(),
    /** A read replica of the target in a second region (seed 004). */
    replica: ReplicaSchema.optional(),
    /** The source's security group, when the source is in this VPC: pgrelocate admits the target (and worker) on 5432 and removes the rule on destroy. */
    sourceSecurityGroupId: z.string().startsWith('sg-').optional(),
    /** When the source is an RDS instance: its identifier (parameter group, rehearsal snapshot). */
    sourceInstanceIdentifier: z.string().optional(),
    /** Manage the source's parameter group for replication (needs the family, e.g. postgres12). */
    sourceParameterGroupFamily: z
      .string()
      .regex(/^(aurora-)?postgresql?\d+(\.\d+)?$|^postgres\d+$/)
      .optional(),
    /** Rehearsal: restore the source's latest snapshot and migrate that copy instead of the source. */
    rehearsal: z.boolean().default(false),
    /** The snapshot a rehearsal restores; default: the source's latest when the copy is created (a later one does not replace it). */
    rehearsalSnapshotIdentifier: z.string().min(1).optional(),
  })
  .strict();

export const StackConfigSchema = z
  .object({
    /** local: an existing target (pgrelocate:targetUrl), no AWS; aws: target, worker and parameter groups. */
    mode: z.enum(['local', 'aws']),
    strategy: z.enum(['logical', 'pglogical', 'dump-restore', 'bucardo']).default('logical'),
    /** sync: copy and stream; cutover: switch (change it and `pulumi up`); rollback: back to the source (after a cutover with options.rollback). */
    phase: z.enum(['sync', 'cutover', 'rollback']).default('sync'),
    options: RunOptionsSchema.default(RunOptionsSchema.parse({})),
    /**
     * Several databases in one run (the CLI's --all-databases / --databases): `all`, or their names. The run
     * creates each on the target as the source has it, moves the roles once, and cuts them over as one.
     */
    databases: z
      .union([z.literal('all'), z.array(z.string().regex(/^[^\s,]+$/, 'a database name without spaces or commas')).min(1)])
      .optional(),
    aws: AwsSchema.optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.mode === 'aws' && !c.aws) ctx.addIssue({ code: 'custom', path: ['aws'], message: 'required when mode is aws' });
    if (c.mode === 'local' && c.aws)
      ctx.addIssue({ code: 'custom', path: ['aws'], message: 'only for mode aws (mode local uses pgrelocate:targetUrl)' });
  });

export type StackConfig = z.infer<typeof StackConfigSchema>;

/** The secret keys, read with requireSecret, never through the schema. */
export const SECRET_KEYS = ['sourceUrl', 'targetUrl', 'targetPassword'] as const;

/** The keys each object of the configuration takes, to name them when one is unknown. */
const KNOWN_KEYS: Record<string, readonly string[]> = {
  '': [...Object.keys(StackConfigSchema.shape), ...SECRET_KEYS],
  options: Object.keys(RunOptionsSchema.shape),
  aws: Object.keys(AwsSchema.shape),
  'aws.replica': Object.keys(ReplicaSchema.shape),
};
export type RunOptions = z.infer<typeof RunOptionsSchema>;
export type AwsConfig = z.infer<typeof AwsSchema>;

export class ConfigError extends Error {
  constructor(readonly issues: readonly string[]) {
    super(`Invalid stack configuration:\n  ${issues.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** Keys earlier versions took, with what replaced them. */
const REPLACED_KEYS: Record<string, string> = {
  'pgrelocate:aws.region': "the region is the AWS provider's: pulumi config set aws:region <region>",
  'pgrelocate:aws.pgrelocatePackage':
    'the worker unpacks the tarball `npm run pack:worker` makes (pgrelocate:aws.workerPackage), never a registry name',
  'pgrelocate:aws.replicaRegion': 'set pgrelocate:aws.replica: {region, subnetIds} (a cross-region replica needs subnets there)',
  'pgrelocate.postgres':
    "remove it: the run creates the source's extensions with the schema and copies the database's grants; it connects to the source as pgrelocate:sourceUrl's user (`pgrelocate check` names what that user needs)",
  'pgrelocate.sourceAdminUrl': 'remove it (and pgrelocate:postgres): pgrelocate no longer creates a role on the source',
};

/** The message for keys a configuration object does not take, naming the ones it does (or what replaced them). */
function unknownKeys(where: string, keys: readonly string[], known: readonly string[]): string {
  const replaced = keys.filter((k) => REPLACED_KEYS[`${where}.${k}`]);
  const unknown = keys.filter((k) => !replaced.includes(k));
  return [
    ...replaced.map((k) => `${where}.${k}: no longer a key; ${REPLACED_KEYS[`${where}.${k}`]!}`),
    ...(unknown.length
      ? [`${where}: unknown key${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; the known ones are ${known.join(', ')}`]
      : []),
  ].join('\n  ');
}

/**
 * Validate the raw `pgrelocate:*` values; throws ConfigError naming each bad
 * key. `setKeys`: every `pgrelocate:` key the stack sets, so that a misspelt
 * one is an error rather than silently ignored.
 */
export function parseStackConfig(raw: Record<string, unknown>, setKeys: readonly string[] = []): StackConfig {
  const known = KNOWN_KEYS[''] ?? [];
  const unknown = setKeys.filter((k) => !known.includes(k));
  const r = StackConfigSchema.safeParse(raw);
  if (r.success && unknown.length === 0) return r.data;
  const unknownIssue = unknown.length ? [unknownKeys('pgrelocate', unknown, known)] : [];
  throw new ConfigError([
    ...unknownIssue,
    ...(r.success ? [] : r.error.issues).map((i) => {
      const key = i.path.length ? `pgrelocate:${i.path.map(String).join('.')}` : 'pgrelocate';
      if (i.code === 'unrecognized_keys') return unknownKeys(key, i.keys, KNOWN_KEYS[i.path.map(String).join('.')] ?? []);
      return `${key}: ${i.message}`;
    }),
  ]);
}

/** Storage for the target: the source's size plus headroom, at least 20 GiB (gp3's minimum). */
export function targetStorageGb(aws: Pick<AwsConfig, 'sourceSizeGb' | 'storageHeadroomPercent'>): number {
  return Math.max(20, Math.ceil(aws.sourceSizeGb * (1 + aws.storageHeadroomPercent / 100)));
}

/**
 * The worker's data disk: dump-restore writes the dump there (twice the source:
 * a dump plus room); the streaming strategies copy table to table and keep only
 * logs and the schema there. At least 50 GiB.
 */
export function workerDiskGb(aws: Pick<AwsConfig, 'sourceSizeGb'>, strategy: StackConfig['strategy']): number {
  return Math.max(50, strategy === 'dump-restore' ? Math.ceil(aws.sourceSizeGb * 2) : 0);
}

/** "17.2" → 17; "16" → 16. */
export function majorOf(engineVersion: string): number {
  return Number(engineVersion.split('.')[0]);
}
