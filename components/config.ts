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

export const AwsSchema = z
  .object({
    region: z.string().min(1),
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
    /** An AMI for the worker (Debian 13 or Ubuntu 24.04 family); default: the latest Debian 13 AMI. */
    workerAmi: z.string().startsWith('ami-').optional(),
    /** The npm package spec the worker installs the pgrelocate CLI from. */
    pgrelocatePackage: z.string().default('pgrelocate@0.1.0'),
    /** A read replica of the target in this second region (seed 004). */
    replicaRegion: z.string().optional(),
    /** When the source is an RDS instance: its identifier (parameter group, rehearsal snapshot). */
    sourceInstanceIdentifier: z.string().optional(),
    /** Manage the source's parameter group for replication (needs the family, e.g. postgres12). */
    sourceParameterGroupFamily: z
      .string()
      .regex(/^(aurora-)?postgresql?\d+(\.\d+)?$|^postgres\d+$/)
      .optional(),
    /** Rehearsal: restore the source's latest snapshot and migrate that copy instead of the source. */
    rehearsal: z.boolean().default(false),
  })
  .strict();

export const PostgresSchema = z
  .object({
    /** Extensions to create in the target database before the schema arrives. */
    extensions: z.array(z.string().regex(/^[a-z0-9_]+$/)).default([]),
    /** Application roles that get CONNECT and USAGE on the target database once it exists. */
    applicationRoles: z.array(z.string().min(1)).default([]),
    /** Create the migration role on the source too (needs an admin URL in pgrelocate:sourceAdminUrl). */
    manageSourceRole: z.boolean().default(false),
  })
  .strict();

export const StackConfigSchema = z
  .object({
    /** local: an existing target (pgrelocate:targetUrl), no AWS; aws: target, worker and parameter groups. */
    mode: z.enum(['local', 'aws']),
    strategy: z.enum(['logical', 'pglogical', 'dump-restore']).default('logical'),
    /** sync: copy and stream; cutover: switch (change it and `pulumi up`). */
    phase: z.enum(['sync', 'cutover']).default('sync'),
    options: RunOptionsSchema.default(RunOptionsSchema.parse({})),
    aws: AwsSchema.optional(),
    postgres: PostgresSchema.default(PostgresSchema.parse({})),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.mode === 'aws' && !c.aws) ctx.addIssue({ code: 'custom', path: ['aws'], message: 'required when mode is aws' });
    if (c.mode === 'local' && c.aws)
      ctx.addIssue({ code: 'custom', path: ['aws'], message: 'only for mode aws (mode local uses pgrelocate:targetUrl)' });
  });

export type StackConfig = z.infer<typeof StackConfigSchema>;

/** The secret keys, read with requireSecret, never through the schema. */
export const SECRET_KEYS = ['sourceUrl', 'targetUrl', 'targetPassword', 'sourceAdminUrl'] as const;

/** The keys each object of the configuration takes, to name them when one is unknown. */
const KNOWN_KEYS: Record<string, readonly string[]> = {
  '': [...Object.keys(StackConfigSchema.shape), ...SECRET_KEYS],
  options: Object.keys(RunOptionsSchema.shape),
  aws: Object.keys(AwsSchema.shape),
  postgres: Object.keys(PostgresSchema.shape),
};
export type RunOptions = z.infer<typeof RunOptionsSchema>;
export type AwsConfig = z.infer<typeof AwsSchema>;

export class ConfigError extends Error {
  constructor(readonly issues: readonly string[]) {
    super(`Invalid stack configuration:\n  ${issues.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** The message for keys a configuration object does not take, naming the ones it does. */
function unknownKeys(where: string, keys: readonly string[], known: readonly string[]): string {
  return `${where}: unknown key${keys.length > 1 ? 's' : ''} ${keys.join(', ')}; the known ones are ${known.join(', ')}`;
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

/** The worker's data disk: at least twice the source (a dump plus room), at least 50 GiB. */
export function workerDiskGb(aws: Pick<AwsConfig, 'sourceSizeGb'>): number {
  return Math.max(50, Math.ceil(aws.sourceSizeGb * 2));
}

/** "17.2" → 17; "16" → 16. */
export function majorOf(engineVersion: string): number {
  return Number(engineVersion.split('.')[0]);
}
