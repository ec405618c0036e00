/**
 * How the run's SSM calls reach AWS: with the same region, profile and
 * assumed roles as the stack's aws provider (`aws:region`, `aws:profile`,
 * `aws:assumeRoles`), so `pulumi up` never drives a worker with credentials
 * other than the ones that created it (run-driver's `ssmCredentials`). Pure.
 */

export interface AwsAccess {
  readonly region: string;
  /** A named profile of the shared AWS config files. */
  readonly profile?: string;
  /** Roles assumed in order, each with the credentials of the one before (the aws provider's `assumeRoles`). */
  readonly assumeRoles?: readonly { readonly roleArn: string; readonly externalId?: string; readonly sessionName?: string }[];
}

/** The aws provider's configuration as `new pulumi.Config('aws')` gives it. */
export interface AwsProviderConfig {
  readonly region?: string | undefined;
  readonly profile?: string | undefined;
  readonly assumeRoles?: readonly { roleArn?: string; externalId?: string; sessionName?: string }[] | undefined;
}

/** The run's AWS access from the aws provider's configuration; a stack without `aws:region` is refused by name. Pure. */
export function awsAccessOf(cfg: AwsProviderConfig): AwsAccess {
  if (!cfg.region)
    throw new Error(
      'aws:region is not set: the AWS provider and the run on the worker need it. Fix: pulumi config set aws:region <region> (e.g. eu-west-1).',
    );
  const roles = (cfg.assumeRoles ?? []).map((r, i) => {
    if (!r.roleArn) throw new Error(`aws:assumeRoles[${i}] has no roleArn. Fix: set roleArn, or remove the entry.`);
    return {
      roleArn: r.roleArn,
      ...(r.externalId ? { externalId: r.externalId } : {}),
      ...(r.sessionName ? { sessionName: r.sessionName } : {}),
    };
  });
  return { region: cfg.region, ...(cfg.profile ? { profile: cfg.profile } : {}), ...(roles.length ? { assumeRoles: roles } : {}) };
}
