/** gp3 storage within AWS's limits, asserted on the pure functions that size it. */
import assert from 'node:assert/strict';
import { EBS_GP3, ebsGp3, RDS_GP3, rdsGp3 } from '../../components/storage';
import { targetStorageGb, workerDiskGb } from '../../components/config';

describe('gp3 storage within AWS limits', function () {
  it('AWS facts: EBS gp3 1–16384 GiB, 3000–16000 IOPS at ≤ 500 per GiB, 125–1000 MiB/s at ≤ 0.25 per IOPS; RDS gp3 20–65536 GiB', function () {
    assert.deepEqual(
      [EBS_GP3.minSizeGb, EBS_GP3.maxSizeGb, EBS_GP3.baselineIops, EBS_GP3.maxIops, EBS_GP3.maxIopsPerGb],
      [1, 16_384, 3_000, 16_000, 500],
    );
    assert.deepEqual([EBS_GP3.baselineThroughputMibps, EBS_GP3.maxThroughputMibps, EBS_GP3.maxThroughputPerIops], [125, 1_000, 0.25]);
    assert.deepEqual([RDS_GP3.minStorageGb, RDS_GP3.maxStorageGb, RDS_GP3.provisionedFromGb], [20, 65_536, 400]);
  });

  it('every worker volume the stack can ask for is a valid gp3 volume', function () {
    for (const sourceSizeGb of [0.1, 1, 10, 25, 250, 4096, 8192]) {
      for (const strategy of ['logical', 'dump-restore'] as const) {
        const v = ebsGp3(workerDiskGb({ sourceSizeGb }, strategy));
        assert.ok(v.size >= EBS_GP3.minSizeGb && v.size <= EBS_GP3.maxSizeGb, `${v.size}`);
        assert.ok(v.iops >= EBS_GP3.baselineIops && v.iops <= EBS_GP3.maxIops, `${v.iops}`);
        assert.ok(v.iops <= Math.max(EBS_GP3.baselineIops, v.size * EBS_GP3.maxIopsPerGb), `${v.iops} IOPS on ${v.size} GiB`);
        assert.ok(v.throughput >= EBS_GP3.baselineThroughputMibps && v.throughput <= EBS_GP3.maxThroughputMibps);
        assert.ok(
          v.throughput <= Math.max(EBS_GP3.baselineThroughputMibps, v.iops * EBS_GP3.maxThroughputPerIops),
          `${v.throughput} MiB/s at ${v.iops} IOPS`,
        );
      }
    }
    assert.throws(() => ebsGp3(workerDiskGb({ sourceSizeGb: 9000 }, 'dump-restore')), /16384 GiB.*Fix:/);
  });

  it('the target: at least 20 GiB, at most 65536, with autoscaling up to twice (bounded), and no provisioned figures', function () {
    assert.deepEqual(rdsGp3(targetStorageGb({ sourceSizeGb: 1, storageHeadroomPercent: 30 })), {
      storageType: 'gp3',
      allocatedStorage: 20,
      maxAllocatedStorage: 40,
    });
    assert.equal(rdsGp3(40_000).maxAllocatedStorage, RDS_GP3.maxStorageGb);
    assert.throws(() => rdsGp3(targetStorageGb({ sourceSizeGb: 60_000, storageHeadroomPercent: 30 })), /at most 65536 GiB.*Fix:/);
    assert.ok(!('iops' in rdsGp3(500)), 'RDS gp3 below 400 GiB takes no IOPS; above, the baseline suffices: none is set');
  });
});
