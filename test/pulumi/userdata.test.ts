/**
 * The worker's cloud-config: a pure function, read by tests and validated by
 * Debian's `cloud-init schema`; its scripts run here for real (with `aws`,
 * `systemctl` and the CLI stood in by small scripts on PATH) and the packed CLI
 * is made by `npm pack` and unpacked the way the worker unpacks it.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { parse } from 'yaml';
import { ssmScript } from '../../components/ssm';
import { parseUrl } from '../../engine/conn';
import { startServer } from '../../engine/local/cluster';
import { sql } from '../helpers/servers';
import { renderUserData, workerPackages, type UserDataArgs } from '../../components/userdata';
import { readWorkerPackage } from '../../components/worker-package';

const ROOT = path.resolve(__dirname, '..', '..', '..');

const base: UserDataArgs = {
  clientMajor: 17,
  strategy: 'logical',
  cliPackage: { bucket: 'pgrelocate-abc', key: 'pgrelocate/0123abcd.tgz', sha256: '0123abcd' },
  region: 'eu-west-1',
  sourceUrlParameter: '/pgrelocate/prod/source-url',
  targetUrlParameter: '/pgrelocate/prod/target-url',
};

interface CloudConfig {
  runcmd: (string[] | string)[];
  write_files: { path: string; content: string }[];
  packages: string[];
}
const doc = (args: UserDataArgs = base): CloudConfig => parse(renderUserData(args)) as CloudConfig;
const file = (d: CloudConfig, p: string): string => d.write_files.find((f) => f.path === p)!.content;

/** A directory of stand-in commands, put first on PATH. */
function fakeBin(dir: string, scripts: Record<string, string>): string {
  const bin = path.join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  for (const [name, body] of Object.entries(scripts)) {
    writeFileSync(path.join(bin, name), `#!/bin/sh\n${body}\n`);
    chmodSync(path.join(bin, name), 0o755);
  }
  return `${bin}:${process.env['PATH']}`;
}

describe('worker user-data', function () {
  this.timeout(120_000);

  it('installs the SSM agent first, the client tools of the target major, Node and the packed CLI; mounts the disk; no credentials, no npm', function () {
    const text = renderUserData(base);
    assert.ok(text.startsWith('#cloud-config\n'));
    const d = doc();
    const cmds = d.runcmd.map((c) => (Array.isArray(c) ? c.join(' ') : c));
    assert.equal(cmds[0], '/usr/local/sbin/pgrelocate-ssm-agent eu-west-1', 'the agent before anything slow');
    assert.match(
      file(d, '/usr/local/sbin/pgrelocate-ssm-agent'),
      /https:\/\/s3\.\$REGION\.amazonaws\.com\/amazon-ssm-\$REGION\/latest\/debian_\$ARCH\//,
    );
    assert.ok(cmds.some((c) => c.includes('postgresql-client-17')));
    assert.ok(cmds.includes('/usr/local/sbin/pgrelocate-install eu-west-1 s3://pgrelocate-abc/pgrelocate/0123abcd.tgz 0123abcd'));
    assert.ok(!cmds.some((c) => /npm /.test(c)) && !workerPackages(base).includes('npm'), 'nothing installed by a registry name');
    assert.ok(cmds.some((c) => c.startsWith('/usr/local/sbin/pgrelocate-disk /data')));
    const unit = file(d, '/etc/systemd/system/pgrelocate@.service');
    assert.match(unit, /ExecStart=\/usr\/local\/bin\/pgrelocate-run %i\n/);
    assert.doesNotMatch(unit, /EnvironmentFile|\$PGRELOCATE_ARGS/, 'systemd splits $VAR at spaces, ignoring quotes');
    assert.match(file(d, '/usr/local/bin/pgrelocate-run'), /aws ssm get-parameter .*--with-decryption/);
    assert.doesNotMatch(text, /postgresql:\/\/|password/i);
  });

  it('adds pglogical or Bucardo packages when the strategy needs them', function () {
    assert.ok(workerPackages({ clientMajor: 16, strategy: 'pglogical' }).includes('postgresql-16-pglogical'));
    assert.ok(workerPackages({ clientMajor: 16, strategy: 'bucardo' }).includes('bucardo'));
    assert.ok(!workerPackages({ clientMajor: 16, strategy: 'logical' }).some((p) => /pglogical|bucardo/.test(p)));
  });

  it('hands every argument to pgrelocate whole: a hook with apostrophes, quotes, $ and spaces is one argument', async function () {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pgrelocate-args-'));
    try {
      const etc = path.join(dir, 'etc');
      mkdirSync(etc);
      const hook = `psql -c "UPDATE flags SET on = true WHERE name = 'maintenance'" && echo '$HOME \`x\`'  done`;
      const args = ['cutover', '--pre-hook', hook, '--post-hook', "it's done", '--max-lag', '16MB'];
      // The SSM script's line that writes the arguments, then the worker's run script reading them.
      const write = ssmScript(args, 60)
        .find((l) => l.startsWith('printf'))!
        .replace('/etc/pgrelocate', etc);
      const w = await execa('sh', ['-c', write], { reject: false });
      assert.equal(w.exitCode, 0, w.stderr);
      const d = doc();
      writeFileSync(path.join(etc, 'env'), file(d, '/etc/pgrelocate/env'));
      const run = path.join(dir, 'pgrelocate-run');
      writeFileSync(
        run,
        file(d, '/usr/local/bin/pgrelocate-run').replaceAll('/etc/pgrelocate', etc).replaceAll('/data/work', path.join(dir, 'work')),
      );
      chmodSync(run, 0o755);
      const PATH = fakeBin(dir, {
        aws: 'echo postgresql://fetched-at-start',
        pgrelocate: `node -e 'process.stdout.write(JSON.stringify({argv: process.argv.slice(1), source: process.env.PGRELOCATE_SOURCE_URL}))' -- "$@"`,
      });
      const r = await execa(run, ['cutover'], { reject: false, env: { PATH } });
      assert.equal(r.exitCode, 0, r.stderr);
      const got = JSON.parse(r.stdout) as { argv: string[]; source: string };
      assert.deepEqual(got.argv, [...args, '--json']);
      assert.equal(got.source, 'postgresql://fetched-at-start');
      // A command with no arguments reads none (printf would have written one empty argument).
      const none = ssmScript(['cleanup'], 60).find((l) => l.includes('/etc/pgrelocate/args-cleanup'))!;
      assert.ok(none.startsWith(': >'), none);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the packed CLI: npm pack bundles its dependencies; the worker checks its SHA-256, unpacks it and runs it with nothing else installed', async function () {
    const packed = await execa(process.execPath, [path.join(ROOT, 'dist', 'scripts', 'pack-worker.js')], { reject: false, cwd: ROOT });
    assert.equal(packed.exitCode, 0, packed.stderr);
    const pkg = readWorkerPackage();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pgrelocate-install-'));
    try {
      const install = path.join(dir, 'install');
      writeFileSync(
        install,
        file(doc(), '/usr/local/sbin/pgrelocate-install')
          .replaceAll('/opt/pgrelocate', path.join(dir, 'opt'))
          .replaceAll('/usr/local/bin/pgrelocate', path.join(dir, 'bin', 'pgrelocate')),
      );
      chmodSync(install, 0o755);
      // `aws s3 cp URI FILE` stood in by a copy of the tarball; node is the only thing the CLI needs besides it.
      const PATH = fakeBin(dir, { aws: `cp ${JSON.stringify(pkg.file)} "$7"` });
      const ok = await execa(install, ['eu-west-1', `s3://b/${pkg.key}`, pkg.sha256], { reject: false, cwd: '/', env: { PATH } });
      assert.equal(ok.exitCode, 0, ok.stderr);
      assert.match(ok.stdout, /^\d+\.\d+\.\d+$/m, 'pgrelocate --version ran from the unpacked tree');
      const help = await execa(path.join(dir, 'bin', 'pgrelocate'), ['sync', '--help'], {
        reject: false,
        cwd: '/',
        env: { PATH: path.dirname(process.execPath) },
      });
      assert.equal(help.exitCode, 0, help.stderr);
      assert.match(help.stdout, /--max-lag/);
      // A tarball that is not the one the stack uploaded is refused, and nothing is unpacked.
      rmSync(path.join(dir, 'opt'), { recursive: true, force: true });
      const bad = await execa(install, ['eu-west-1', `s3://b/${pkg.key}`, '0'.repeat(64)], { reject: false, cwd: '/', env: { PATH } });
      assert.notEqual(bad.exitCode, 0);
      assert.ok(!existsSync(path.join(dir, 'opt')), 'nothing unpacked from a tarball whose hash differs');
      const listing = await execa('tar', ['-tzf', pkg.file]);
      assert.match(listing.stdout, /^package\/node_modules\/pg\/package\.json$/m, 'dependencies bundled');
      assert.doesNotMatch(
        listing.stdout,
        /^package\/(dist\/(test|components|bench)|node_modules\/@pulumi)\//m,
        'only the engine and the CLI',
      );
      const manifest = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
        bundleDependencies: string[];
        dependencies: Record<string, string>;
      };
      assert.deepEqual(
        manifest.bundleDependencies,
        Object.keys(manifest.dependencies).filter((d) => !/^@(pulumi|aws-sdk)\//.test(d)),
        "every runtime dependency of the engine and CLI is bundled (the Pulumi program's are not)",
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("bucardo: the worker's control server gets a superuser whose password is made there, kept root-only, and never on a command line", async function () {
    if (!existsSync('/usr/lib/postgresql/15/lib/plperl.so')) {
      process.stderr.write(
        'PL/Perl for PostgreSQL 15 is not installed: apt-get install -y postgresql-plperl-15 (npm test as root does it)\n',
      );
      this.skip();
    }
    const ctl = await startServer({ major: 15, origin: 'debian', name: 'bucardo-control-ud' });
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pgrelocate-bucardo-ud-'));
    try {
      const d = doc({ ...base, strategy: 'bucardo', clientMajor: 15 });
      const envFile = path.join(dir, 'bucardo.env');
      const script = path.join(dir, 'control');
      const passfile = path.join(dir, 'bucardo.pgpass');
      writeFileSync(
        script,
        file(d, '/usr/local/sbin/pgrelocate-bucardo-control')
          .replaceAll('/etc/pgrelocate/bucardo.env', envFile)
          .replaceAll('/etc/pgrelocate/bucardo.pgpass', passfile),
      );
      chmodSync(script, 0o755);
      const argvLog = path.join(dir, 'argv.log');
      // Debian's cluster tools stood in for this server; every command line is logged to check no password is on one.
      const PATH = fakeBin(dir, {
        pg_ctlcluster: `echo "pg_ctlcluster $*" >> ${argvLog}`,
        pg_conftool: `echo "pg_conftool $*" >> ${argvLog}; echo ${ctl.port}`,
        runuser: `echo "runuser $*" >> ${argvLog}; shift 3; PGHOST=127.0.0.1 PGUSER=${ctl.superuser} PGPASSFILE=${path.join(dir, 'su.pgpass')} exec "$@"`,
      });
      writeFileSync(path.join(dir, 'su.pgpass'), `127.0.0.1:${ctl.port}:*:${ctl.superuser}:${ctl.password}\n`, { mode: 0o600 });
      const r = await execa(script, ['15'], { reject: false, env: { PATH } });
      assert.equal(r.exitCode, 0, r.stderr);
      assert.equal(statSync(passfile).mode & 0o777, 0o600, 'root-only');
      const envText = readFileSync(envFile, 'utf8');
      const url = /^PGRELOCATE_BUCARDO_URL=(\S+)$/m.exec(envText)![1]!;
      const u = new URL(url);
      assert.equal(u.username, 'pgrelocate_control');
      assert.equal(u.port, String(ctl.port));
      assert.equal(u.password, '', 'no password in the URL: it is in the passfile');
      assert.equal(/^PGPASSFILE=(\S+)$/m.exec(envText)![1], passfile);
      const password = /:pgrelocate_control:([0-9a-f]{48})$/m.exec(readFileSync(passfile, 'utf8'))![1]!;
      assert.ok(!readFileSync(argvLog, 'utf8').includes(password), 'the password is on no command line');
      assert.ok(!envText.includes(password));
      // The engine resolves the URL as libpq would, with the passfile; then what its Bucardo control checks first.
      const control = parseUrl(url, 'Bucardo control URL', { env: { PGPASSFILE: passfile } });
      assert.equal(control.password, password);
      const got = await sql<{ su: boolean; plperl: boolean }>(
        control,
        `SELECT rolsuper AS su, EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'plperl') AS plperl FROM pg_roles WHERE rolname = current_user`,
      );
      assert.deepEqual(got, [{ su: true, plperl: true }]);
      // A second boot (cloud-init runs runcmd once, but a re-run must not fail or change the password).
      const again = await execa(script, ['15'], { reject: false, env: { PATH } });
      assert.equal(again.exitCode, 0, again.stderr);
      assert.equal(/^PGRELOCATE_BUCARDO_URL=(\S+)$/m.exec(readFileSync(envFile, 'utf8'))![1], url);
    } finally {
      await ctl.stop();
      rmSync(dir, { recursive: true, force: true });
    }
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
        const f = path.join(dir, `${strategy}.yaml`);
        writeFileSync(f, renderUserData({ ...base, strategy, clientMajor: 16 }));
        const r = await execa('cloud-init', ['schema', '--config-file', f], { reject: false });
        assert.equal(r.exitCode, 0, `${strategy}: ${String(r.stdout)} ${String(r.stderr)}`);
        assert.match(String(r.stdout), /Valid schema|Valid cloud-config/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
