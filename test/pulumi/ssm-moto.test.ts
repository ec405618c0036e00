/**
 * The worker's SSM path against moto_server (the AWS API as moto serves it):
 * the run driver's SendCommand as AWS receives it (document, commands,
 * execution and delivery timeouts, instance), the polling of
 * GetCommandInvocation, the script moto holds run for real on this machine
 * with a report far beyond the 24,000-character output cap, and the aws
 * provider's assumed role taken through STS. moto runs no script and knows no
 * instance, so InvalidInstanceId is asserted on `sendWithRetry` (ssm.test.ts).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ListCommandsCommand, SSMClient } from '@aws-sdk/client-ssm';
import { execa } from 'execa';
import { ssmCredentials, startRun, workerCommand, type RunInputs } from '../../components/run-driver';
import { executionTimeoutSeconds, reportSummary, ssmScript, SSM_LIMITS } from '../../components/ssm';

const INSTALL = "pip install 'moto[server]'";

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

describe('the SSM path against moto_server', function () {
  this.timeout(120_000);
  let moto: ChildProcess | undefined;
  let endpoint: string;
  const saved: Record<string, string | undefined> = {};
  const env = {
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_ENDPOINT_URL_SSM: '',
    AWS_ENDPOINT_URL_STS: '',
    AWS_PROFILE: undefined,
    AWS_CONFIG_FILE: '/nonexistent',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent',
  };

  before(async function () {
    const which = await execa('sh', ['-c', 'command -v moto_server'], { reject: false });
    if (which.exitCode !== 0) {
      process.stderr.write(`moto_server is not installed: the SSM path is not run against it. Install it with: ${INSTALL}\n`);
      this.skip();
    }
    const port = await freePort();
    endpoint = `http://127.0.0.1:${port}`;
    moto = spawn(String(which.stdout).trim(), ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    for (let i = 0; ; i++) {
      const up = await fetch(`${endpoint}/moto-api/`).then(
        () => true,
        () => false,
      );
      if (up) break;
      if (i > 100) throw new Error(`moto_server did not start on ${endpoint}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const [k, v] of Object.entries({ ...env, AWS_ENDPOINT_URL_SSM: endpoint, AWS_ENDPOINT_URL_STS: endpoint })) {
      saved[k] = process.env[k];
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  after(function () {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    moto?.kill('SIGTERM');
  });

  const inputs: RunInputs = {
    source: 'postgresql://app:s3cret@source.internal/shop',
    target: 'postgresql://admin:t0p@target.internal/app',
    strategy: 'logical',
    phase: 'sync',
    options: { waitSeconds: 900, preHook: "psql -c 'SELECT 1'" },
    mode: 'ssm',
    workerInstanceId: 'i-0123456789abcdef0',
    aws: { region: 'eu-west-1' },
  };

  /** The commands moto holds for the caller's own account. */
  async function sentCommands(): Promise<
    { DocumentName?: string; Parameters?: Record<string, string[]>; InstanceIds?: string[]; TimeoutSeconds?: number }[]
  > {
    const client = new SSMClient({ region: 'eu-west-1', endpoint });
    return (await client.send(new ListCommandsCommand({}))).Commands ?? [];
  }

  it('SendCommand as AWS receives it: AWS-RunShellScript, the script, timeouts within the limits; the driver polls the invocation to its end', async function () {
    const before = (await sentCommands()).length;
    const outs = await startRun(inputs);
    // moto's invocation succeeds at once with no output: the driver read it and went on.
    assert.equal(outs.status, 'streaming');
    const sent = (await sentCommands()).slice(before);
    assert.equal(sent.length, 1);
    const c = sent[0]!;
    assert.equal(c.DocumentName, 'AWS-RunShellScript');
    assert.deepEqual(c.InstanceIds, ['i-0123456789abcdef0']);
    assert.deepEqual(c.Parameters!['commands'], ssmScript(workerCommand(inputs, 'sync'), 900, true));
    assert.deepEqual(c.Parameters!['executionTimeout'], [String(executionTimeoutSeconds(900))]);
    assert.equal(c.TimeoutSeconds, SSM_LIMITS.deliveryTimeoutSeconds);
    assert.doesNotMatch(JSON.stringify(c), /s3cret|t0p/, 'no credential in the command');

    // dump-restore asks for the longest wait there is: the execution timeout is AWS's maximum, no more.
    await startRun({ ...inputs, strategy: 'dump-restore' });
    const migrate = (await sentCommands()).at(-1)!;
    assert.deepEqual(migrate.Parameters!['executionTimeout'], [String(SSM_LIMITS.maxExecutionTimeoutSeconds)]);
  });

  it('the script moto holds, run here: a 60-table cutover report comes back as a summary far below the output cap', async function () {
    const before = (await sentCommands()).length;
    await startRun({ ...inputs, phase: 'cutover' });
    const sent = (await sentCommands()).slice(before);
    const cutover = sent.find((c) => c.Parameters!['commands']!.some((l) => l.includes('pgrelocate@cutover')))!;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pgrelocate-moto-'));
    try {
      mkdirSync(path.join(dir, 'logs'));
      mkdirSync(path.join(dir, 'etc'));
      const report = {
        runId: 'f1d2d2f9-24d4-4ae6-9f4c-2b2f3e3c5a11',
        blackoutSeconds: 1.7,
        verification: {
          ok: true,
          tables: Array.from({ length: 60 }, (_, i) => ({
            table: `app.table_${i}`,
            source: 1e6 + i,
            target: 1e6 + i,
            note: 'x'.repeat(400),
          })),
        },
      };
      writeFileSync(path.join(dir, 'logs', 'cutover.json'), `{"progress":1}\n${JSON.stringify(report, null, 2)}\n`);
      const bin = path.join(dir, 'bin');
      mkdirSync(bin);
      // The unit has ended successfully (started by an earlier call); cloud-init is done.
      const stubs: Record<string, string> = {
        systemctl: 'case "$*" in *ActiveState*) echo inactive;; *Result*) echo success;; esac',
        'cloud-init': 'exit 0',
      };
      for (const [name, body] of Object.entries(stubs)) {
        writeFileSync(path.join(bin, name), `#!/bin/sh\n${body}\n`);
        chmodSync(path.join(bin, name), 0o755);
      }
      const script = cutover
        .Parameters!['commands']!.join('\n')
        .replaceAll('/data/logs', path.join(dir, 'logs'))
        .replaceAll('/etc/pgrelocate', path.join(dir, 'etc'))
        // Already started: only the wait and the summary.
        .replace(/^if ! running; then .*$/m, ':');
      const r = await execa('sh', ['-c', script], { reject: false, env: { PATH: `${bin}:${process.env['PATH']}` } });
      assert.equal(r.exitCode, 0, r.stderr);
      assert.ok(JSON.stringify(report).length > SSM_LIMITS.maxOutputChars, 'the report itself is beyond the cap');
      assert.ok(r.stdout.length < 1_000, `${r.stdout.length} characters printed`);
      assert.deepEqual(JSON.parse(r.stdout), reportSummary(report));
      assert.equal(reportSummary(report).verified, true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the aws provider's assumed roles: each taken through STS in turn, and the SSM calls made with the last one", async function () {
    const access = {
      region: 'eu-west-1',
      assumeRoles: [
        { roleArn: 'arn:aws:iam::123456789012:role/deployer', externalId: 'shop-ci' },
        { roleArn: 'arn:aws:iam::210987654321:role/pgrelocate', sessionName: 'migration' },
      ],
    };
    const creds = await ssmCredentials(access)!();
    assert.match(creds.accessKeyId, /^ASIA/, 'temporary credentials from STS');
    assert.ok(creds.sessionToken);
    assert.notEqual(creds.accessKeyId, 'testing');
    const mine = (await sentCommands()).length;
    const outs = await startRun({ ...inputs, aws: access });
    assert.equal(outs.status, 'streaming');
    // moto keeps one backend per account: the command landed in the last role's account, not the caller's.
    assert.equal((await sentCommands()).length, mine, "nothing sent with the caller's own credentials");
    const asRole = new SSMClient({ region: 'eu-west-1', endpoint, credentials: ssmCredentials(access)! });
    const theirs = (await asRole.send(new ListCommandsCommand({}))).Commands ?? [];
    assert.equal(theirs.length, 1);
    assert.deepEqual(theirs[0]!.InstanceIds, [inputs.workerInstanceId]);
    assert.equal(ssmCredentials({ region: 'eu-west-1' }), undefined, "no profile, no role: the SDK's default chain");
  });
});
