/**
 * Resource options, built by pure functions so tests can assert them (mocks
 * never see options): the target database is protected and slow to create;
 * the worker is replaceable; the migration run may take a day.
 */
import type * as pulumi from '@pulumi/pulumi';

/** The target database and anything holding its data: never deleted by accident. */
export function protectedOptions(parent: pulumi.Resource): pulumi.CustomResourceOptions {
  return { parent, protect: true, customTimeouts: { create: '120m', update: '120m', delete: '60m' } };
}

/** Disposable infrastructure (worker, its disk): replaced by creating the new one after deleting the old. */
export function disposableOptions(parent: pulumi.Resource): pulumi.CustomResourceOptions {
  return { parent, deleteBeforeReplace: true };
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
