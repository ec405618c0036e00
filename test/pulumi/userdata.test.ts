/** The worker's cloud-config: a pure function, read by tests and validated by Debian's `cloud-init schema`. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { parse } from 'yaml';
import { renderUserData, workerPackages, type UserDataArgs } from '../../components/userdata';

const base: UserDataArgs = {
  clientMajor: 17,
  strategy: 'logical',
  pgrelocatePackage: 'pgrelocate@0.1.0',
  region: 'eu-west-1',
  sourceUrlParameter: '/pgrelocate/prod/source-url',
  targetUrlParameter: '/pgrelocate/prod/target-url',
};

describe('worker user-data', function () {
  it('installs the client tools of the target major, Node and pgrelocate; mounts the disk; no credentials', function () {
    const text = renderUserData(base);
    assert.ok(text.startsWith('#cloud-config\n'));
    const doc = parse(text) as { runcmd: (string[] | string)[]; write_files: { path: string; content: string }[] };
    const cmds = doc.runcmd.map((c) => (Array.isArray(c) ? c.join(' ') : c));
    assert.ok(cmds.some((c) => c.includes('postgresql-client-17')));
    assert.ok(cmds.some((c) => c === 'npm install --global --omit=dev pgrelocate@0.1.0'));
    assert.ok(cmds.some((c) => c.startsWith('/usr/local/sbin/pgrelocate-disk /data')));
    const unit = doc.write_files.find((f) => f.path === '/etc/systemd/system/pgrelocate@.service')!;
    assert.match(unit.content, /ExecStart=\/usr\/local\/bin\/pgrelocate-run %i/);
    const run = doc.write_files.find((f) => f.path === '/usr/local/bin/pgrelocate-run')!;
    assert.match(run.content, /aws ssm get-parameter .*--with-decryption/);
    assert.doesNotMatch(text, /postgresql:\/\/|password/i);
  });

  it('adds pglogical or Bucardo packages when the strategy needs them', function () {
    assert.ok(workerPackages({ clientMajor: 16, strategy: 'pglogical' }).includes('postgresql-16-pglogical'));
    assert.ok(workerPackages({ clientMajor: 16, strategy: 'bucardo' }).includes('bucardo'));
    assert.ok(!workerPackages({ clientMajor: 16, strategy: 'logical' }).some((p) => /pglogical|bucardo/.test(p)));
  });

  it('is valid cloud-config for `cloud-init schema`, for every strategy', async function () {
    const which = await execa('sh', ['-c', 'command -v cloud-init'], { reject: false });
    if (which.exitCode !== 0) {
      // scripts/debian-packages.txt lists cloud-init: `npm test` as root installs it.
      this.skip();
    }
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pgrelocate-userdata-'));
    try {
      for (const strategy of ['logical', 'dump-restore', 'pglogical', 'bucardo'] as const) {
        const file = path.join(dir, `${strategy}.yaml`);
        writeFileSync(file, renderUserData({ ...base, strategy, clientMajor: 16 }));
        const r = await execa('cloud-init', ['schema', '--config-file', file], { reject: false });
        assert.equal(r.exitCode, 0, `${strategy}: ${String(r.stdout)} ${String(r.stderr)}`);
        assert.match(String(r.stdout), /Valid schema|Valid cloud-config/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
