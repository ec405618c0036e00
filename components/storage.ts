/**
 * gp3 storage within what AWS allows, as pure functions: the limits are
 * written down here as facts (asserted in test/pulumi/storage.test.ts) so a
 * source too large for them is refused at preview, not by AWS mid-`up`.
 */

/** EBS gp3 (the worker's data volume), as the EC2 documentation states them. */
export const EBS_GP3 = {
  minSizeGb: 1,
  maxSizeGb: 16_384,
  baselineIops: 3_000,
  maxIops: 16_000,
  /** Provisioned IOPS per GiB of volume. */
  maxIopsPerGb: 500,
  baselineThroughputMibps: 125,
  maxThroughputMibps: 1_000,
  /** Throughput per provisioned IOPS (MiB/s). */
  maxThroughputPerIops: 0.25,
} as const;

/** RDS for PostgreSQL on gp3, as the RDS documentation states them. */
export const RDS_GP3 = {
  minStorageGb: 20,
  maxStorageGb: 65_536,
  /** Below this size RDS gives 3,000 IOPS / 125 MiB/s and takes no provisioned figures; at or above, 12,000 / 500. */
  provisionedFromGb: 400,
} as const;

/**
 * The worker's data volume: as fast as gp3 gets for a dump and a restore
 * (6,000 IOPS, 500 MiB/s), within the per-GiB and per-IOPS ratios. Pure.
 */
export function ebsGp3(sizeGb: number): { type: 'gp3'; size: number; iops: number; throughput: number } {
  const size = Math.ceil(sizeGb);
  if (size < EBS_GP3.minSizeGb || size > EBS_GP3.maxSizeGb)
    throw new Error(
      `The worker's data volume would be ${size} GiB; gp3 takes ${EBS_GP3.minSizeGb}–${EBS_GP3.maxSizeGb} GiB. Fix: pgrelocate:aws.sourceSizeGb is the source's size on disk; above 8 TiB, use the logical strategy, which needs no dump space (the volume is sized for dump-restore).`,
    );
  const iops = Math.max(EBS_GP3.baselineIops, Math.min(6_000, EBS_GP3.maxIops, size * EBS_GP3.maxIopsPerGb));
  const throughput = Math.max(
    EBS_GP3.baselineThroughputMibps,
    Math.min(500, EBS_GP3.maxThroughputMibps, Math.floor(iops * EBS_GP3.maxThroughputPerIops)),
  );
  return { type: 'gp3', size, iops, throughput };
}

/**
 * The target's storage: gp3 at the size asked for, with storage autoscaling up
 * to twice that (bounded by RDS's maximum) so an index build or a bloated copy
 * does not fill the disk mid-run. Pure.
 */
export function rdsGp3(storageGb: number): { storageType: 'gp3'; allocatedStorage: number; maxAllocatedStorage: number } {
  const size = Math.max(RDS_GP3.minStorageGb, Math.ceil(storageGb));
  if (size > RDS_GP3.maxStorageGb)
    throw new Error(
      `The target needs ${size} GiB; RDS for PostgreSQL takes at most ${RDS_GP3.maxStorageGb} GiB. Fix: lower pgrelocate:aws.storageHeadroomPercent, or move part of the data elsewhere first.`,
    );
  return { storageType: 'gp3', allocatedStorage: size, maxAllocatedStorage: Math.min(size * 2, RDS_GP3.maxStorageGb) };
}
