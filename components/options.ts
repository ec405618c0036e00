/**
 * Resource options, built by pure functions so tests can assert them: the
 * target is kept by `pulumi destroy` (retainOnDelete, not protect, which makes
 * destroy refuse the whole stack); the worker is replaceable; inputs fed by a
 * `mostRecent` look-up are pinned at creation; the migration run may take a day.
 */
import type * as pulumi from '@pulumi/pulumi';

/**
 * The target database and everything it stands on (its subnet group, security
 * group and parameter groups): left in AWS by `pulumi destroy` and dropped from
 * the state, so the migrated database survives it. `deletionProtection` on the
 * instance still guards it against a delete outside Pulumi.
 */
export function retainedOptions(parent: pulumi.Resource): pulumi.CustomResourceOptions {
  return { parent, retainOnDelete: true, customTimeouts: { create: '120m', update: '120m', delete: '60m' } };
}

/** Disposable infrastructure (worker, its disk): replaced by creating the new one after deleting the old. */
export function disposableOptions(parent: pulumi.Resource): pulumi.CustomResourceOptions {
  return { parent, deleteBeforeReplace: true };
}

/**
 * For inputs fed by a `mostRecent` look-up (the newest AMI, the latest
 * snapshot), which replace the resource when they change: take the value of
 * the day the resource was created and ignore later ones. `pulumi up --replace`
 * takes a new one on purpose.
 */
export function lookupPinnedOptions(properties: readonly string[]): pulumi.CustomResourceOptions {
  return { ignoreChanges: [...properties] };
}

/**
 * The run: a copy of terabytes takes hours; deletion only removes replication
 * artefacts. It depends on the components it uses, so it must not be their child.
 */
export function migrationRunOptions(dependsOn: pulumi.Resource[] = []): pulumi.CustomResourceOptions {
  return { dependsOn, customTimeouts: { create: '48h', update: '6h', delete: '1h' } };
}

/** Children of a component: parented, nothing else. */
export function childOptions(parent: pulumi.Resource): pulumi.CustomResourceOptions {
  return { parent };
}
