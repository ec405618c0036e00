/**
 * The Pulumi program: read the stack's `pgrelocate:*` configuration, validate
 * it, and compose the components (components/stack.ts). Run `pulumi up` to
 * provision and sync; set `pgrelocate:phase cutover` and `pulumi up` to cut over;
 * `pulumi destroy` removes the worker and every replication artefact, and
 * leaves the target instance (and the migrated database) in AWS.
 */
import * as pulumi from '@pulumi/pulumi';
import { awsAccessOf, type AwsProviderConfig } from './components/aws-access';
import { parseStackConfig } from './components/config';
import { buildStack } from './components/stack';

const config = new pulumi.Config('pgrelocate');
const defined = (o: Record<string, unknown>): Record<string, unknown> =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

const cfg = parseStackConfig(
  defined({
    mode: config.get('mode'),
    strategy: config.get('strategy'),
    phase: config.get('phase'),
    options: config.getObject('options'),
    aws: config.getObject('aws'),
  }),
  // Every pgrelocate: key the stack sets, so a misspelt one is refused by name.
  Object.keys(pulumi.runtime.allConfig())
    .filter((k) => k.startsWith('pgrelocate:'))
    .map((k) => k.slice('pgrelocate:'.length)),
);

// The aws provider's own settings: the run's SSM calls use the same region, profile and roles.
const awsConfig = new pulumi.Config('aws');
const awsProvider: AwsProviderConfig = {
  region: awsConfig.get('region'),
  profile: awsConfig.get('profile'),
  assumeRoles: awsConfig.getObject<NonNullable<AwsProviderConfig['assumeRoles']>>('assumeRoles'),
};

const outputs = buildStack(
  cfg,
  {
    sourceUrl: config.requireSecret('sourceUrl'),
    ...(config.get('targetUrl') !== undefined || cfg.mode === 'local' ? { targetUrl: config.requireSecret('targetUrl') } : {}),
    ...(config.get('targetPassword') !== undefined ? { targetPassword: config.requireSecret('targetPassword') } : {}),
  },
  cfg.mode === 'aws' ? { aws: awsAccessOf(awsProvider) } : {},
);

export const status = outputs.status;
export const blackoutSeconds = outputs.blackoutSeconds;
export const copySeconds = outputs.copySeconds;
export const connectionString = outputs.connectionString;
export const targetAddress = outputs.targetAddress;
export const workerInstanceId = outputs.workerInstanceId;
export const sourceParameterGroup = outputs.sourceParameterGroup;
export const sourceRebootRequired = outputs.sourceRebootRequired;
