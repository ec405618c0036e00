/** The SSM path to the worker, against AWS's documented limits, its shell run for real. */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { executionTimeoutSeconds, reportSummary, sendWithRetry, ssmScript, SSM_LIMITS } from '../../components/ssm';

/** A cutover report as `pgrelocate cutover --json` prints it, for `tables` tables. */
function cutoverReport(tables: number): unknown {
  return {
    runId: '2e31cb9b-a8aa-423f-8247-5f9a9ef45ee7',
    ok: true,
    blackoutSeconds: 0.83,
    steps: ['analyze', 'lag-gate', 'fence', 'final-lsn', 'sequences', 'verify'].map((name) => ({ name, seconds: 0.01 })),
    sequences: tables,
    verification: {
      ok: true,
      mode: 'count',
      rows: 1000 * tables,
      tables: Array.from({ length: tables }, (_, i) => ({
        table: `"tenant_${i}"."orders_with_a_long_name_${i}"`,
        sourceRows: 1000,
        targetRows: 1000,
        keyRange: { source: ['1', '1000'], target: ['1', '1000'] },
        checksum: null,
        seconds: 0.012,
        verdict: 'same row count and primary-key range on both sides',
      })),
      mismatches: [],
    },
    newTarget: 'postgresql://pgrelocate@target.example:5432/shop',
  };
}

describe('SSM path to the worker', function () {
  it('stays within AWS limits: execution timeout at most 172800 s, a margin for the script beyond its wait', function () {
    assert.equal(SSM_LIMITS.maxExecutionTimeoutSeconds, 172_800);
    assert.equal(SSM_LIMITS.maxOutputChars, 24_000);
    for (const wait of [1, 3600, 7 * 86400, 1e9]) {
      const timeout = executionTimeoutSeconds(wait);
      assert.ok(timeout <= SSM_LIMITS.maxExecutionTimeoutSeconds, `${wait}: ${timeout}`);
      const script = ssmScript(['migrate'], wait).join('\n');
      const scriptWait = Number(/\+ (\d+) \)\)/.exec(script)![1]);
      assert.ok(scriptWait + 600 <= timeout, `the script gives up waiting ${timeout - scriptWait}s before SSM ends it`);
    }
    assert.equal(executionTimeoutSeconds(3600), 4200);
  });

  it('reads a report of any size: the worker prints its summary, far below the 24,000-character output cap', async function () {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pgrelocate-ssm-'));
    const report = cutoverReport(60);
    const text = JSON.stringify(report, null, 2);
    assert.ok(text.length > SSM_LIMITS.maxOutputChars, `the report is ${text.length} characters`);
    writeFileSync(path.join(dir, 'cutover.json'), text + '\n');
    // The script's last command, with the unit's report file in this directory.
    const last = ssmScript(['cutover'], 60).at(-1)!.replace('/data/logs/cutover.json', path.join(dir, 'cutover.json'));
    const r = await execa('sh', ['-c', last]);
    assert.ok(r.stdout.length < 1000, `printed ${r.stdout.length} characters`);
    assert.deepEqual(JSON.parse(r.stdout), reportSummary(report));
    assert.deepEqual(reportSummary(report), {
      runId: '2e31cb9b-a8aa-423f-8247-5f9a9ef45ee7',
      seconds: null,
      copySeconds: null,
      catchUpSeconds: null,
      blackoutSeconds: 0.83,
      verified: true,
      running: false,
      lost: false,
    });
    assert.equal(reportSummary({ running: true }).running, true);
    assert.equal(reportSummary({ runId: 'r', copy: { seconds: 12 }, catchUpSeconds: 3 }).copySeconds, 12);
  });

  it('summarizes a run of several databases (--all-databases): the first run id, summed times, the one blackout, every verification', async function () {
    const sync = {
      strategy: 'logical',
      databases: [
        { database: 'crm', runId: 'r1', copy: { seconds: 2 }, catchUpSeconds: 1 },
        { database: 'shop', runId: 'r2', copy: { seconds: 5 }, catchUpSeconds: 0.5 },
      ],
    };
    assert.deepEqual(reportSummary(sync), {
      runId: 'r1',
      seconds: null,
      copySeconds: 7,
      catchUpSeconds: 1.5,
      blackoutSeconds: null,
      verified: null,
      running: false,
      lost: false,
    });
    const one = cutoverReport(2) as { verification: Record<string, unknown> };
    const cutover = {
      databases: [
        { database: 'crm', result: one },
        { database: 'shop', result: { ...one, verification: { ...one.verification, ok: false } } },
      ],
      blackoutSeconds: 0.31,
    };
    assert.equal(reportSummary(cutover).blackoutSeconds, 0.31);
    assert.equal(reportSummary(cutover).verified, false, 'one database failing its verification fails the whole');
    // The worker's script runs the same function on the report file.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pgrelocate-ssm-'));
    writeFileSync(path.join(dir, 'cutover.json'), JSON.stringify(cutover, null, 2) + '\n');
    const last = ssmScript(['cutover'], 60).at(-1)!.replace('/data/logs/cutover.json', path.join(dir, 'cutover.json'));
    assert.deepEqual(JSON.parse((await execa('sh', ['-c', last])).stdout), reportSummary(cutover));
  });

  it('waits while the unit is activating, not only active, and for cloud-init to finish first', async function () {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pgrelocate-ssm-'));
    const script = ssmScript(['sync'], 60);
    assert.equal(script[1], 'cloud-init status --wait >/dev/null 2>&1 || true');
    const running = script.find((l) => l.startsWith('running()'))!;
    const systemctl = path.join(dir, 'systemctl');
    for (const [state, expected] of [
      ['active', 0],
      ['activating', 0],
      ['deactivating', 0],
      ['inactive', 1],
      ['failed', 1],
    ] as const) {
      writeFileSync(systemctl, `#!/bin/sh\necho ${state}\n`);
      chmodSync(systemctl, 0o755);
      const r = await execa('sh', ['-c', `${running}\nrunning`], { reject: false, env: { PATH: `${dir}:${process.env['PATH']}` } });
      assert.equal(r.exitCode, expected, `${state}: ${r.stderr}`);
    }
    const n = await execa('sh', ['-n', '-c', script.join('\n')], { reject: false });
    assert.equal(n.exitCode, 0, n.stderr);
    // Waiting again for a run an earlier pulumi up started: nothing is started, nor its report emptied.
    const again = ssmScript(['migrate'], 60, false).join('\n');
    assert.ok(!/systemctl start|: > /.test(again), again);
    assert.match(ssmScript(['migrate'], 60).join('\n'), /systemctl start --no-block pgrelocate@migrate\.service/);
  });

  it("past its wait, prints the run's id and phase with running: true and leaves the unit going; a command this worker never ran is lost", async function () {
    this.timeout(30_000);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pgrelocate-ssm-wait-'));
    const stubs: Record<string, string> = {
      systemctl: 'case "$*" in *ActiveState*) echo active;; *) exit 1;; esac',
      'cloud-init': 'exit 0',
      'pgrelocate-run': `[ "$1" = status ] && echo '{"id":"7d1c0b5e-1111-4222-8333-944445555666","phase":"copy","steps":[]}'`,
    };
    for (const [name, body] of Object.entries(stubs)) {
      writeFileSync(path.join(dir, name), `#!/bin/sh\n${body}\n`);
      chmodSync(path.join(dir, name), 0o755);
    }
    const env = { PATH: `${dir}:${process.env['PATH']}` };
    const script = ssmScript(['sync'], 1, false)
      .join('\n')
      .replaceAll('/usr/local/bin/pgrelocate-run', path.join(dir, 'pgrelocate-run'))
      .replaceAll('/data/logs', dir);
    writeFileSync(path.join(dir, 'sync.json'), '{"progress":1}\n');
    const r = await execa('sh', ['-c', script], { reject: false, env });
    assert.equal(r.exitCode, 0, r.stderr);
    const summary = reportSummary(JSON.parse(r.stdout));
    assert.equal(summary.running, true);
    assert.equal(summary.runId, '7d1c0b5e-1111-4222-8333-944445555666', 'the stack shows which run it waits for');
    // The unit is not running and never wrote a report here: the worker was replaced while it ran elsewhere.
    writeFileSync(path.join(dir, 'systemctl'), '#!/bin/sh\necho inactive\n');
    rmSync(path.join(dir, 'sync.json'));
    const lost = await execa('sh', ['-c', script], { reject: false, env });
    assert.equal(lost.exitCode, 0, lost.stderr);
    assert.equal(reportSummary(JSON.parse(lost.stdout)).lost, true);
  });

  it('retries SendCommand while SSM does not know the instance yet, and nothing else', async function () {
    let calls = 0;
    const slept: number[] = [];
    const sleep = async (ms: number) => void slept.push(ms);
    const notYet = Object.assign(new Error('Instances [[i-1]] not in a valid state'), { name: 'InvalidInstanceId' });
    const r = await sendWithRetry(
      async () => {
        if (++calls < 4) throw notYet;
        return 'sent';
      },
      { sleep, delayMs: 5 },
    );
    assert.equal(r, 'sent');
    assert.equal(calls, 4);
    assert.deepEqual(slept, [5, 5, 5]);
    await assert.rejects(
      sendWithRetry(async () => Promise.reject(notYet), { attempts: 3, sleep }),
      /not in a valid state/,
    );
    calls = 0;
    await assert.rejects(
      sendWithRetry(
        async () => {
          calls++;
          throw Object.assign(new Error('denied'), { name: 'AccessDeniedException' });
        },
        { sleep },
      ),
      /denied/,
    );
    assert.equal(calls, 1, 'an error other than InvalidInstanceId is not retried');
  });
});
