/**
 * How the MigrationRun provider drives the worker through SSM Run Command,
 * within what AWS allows. Pure, apart from `sendWithRetry`'s sleeping.
 */

/** AWS limits the SSM path must stay within, as documented by AWS (asserted in test/pulumi/ssm.test.ts). */
export const SSM_LIMITS = {
  /** AWS-RunShellScript's `executionTimeout` parameter: at most 172800 seconds (48 hours). */
  maxExecutionTimeoutSeconds: 172_800,
  /** GetCommandInvocation's StandardOutputContent is cut at 24,000 characters. */
  maxOutputChars: 24_000,
  /** SendCommand's TimeoutSeconds (time to start on the instance) is at most 2,592,000; 600 is plenty. */
  deliveryTimeoutSeconds: 600,
} as const;

/** How long the script may wait for the unit: what is left of the execution timeout after a margin for the rest of it. */
export function scriptWaitSeconds(wanted: number): number {
  return Math.max(1, Math.min(Math.floor(wanted), SSM_LIMITS.maxExecutionTimeoutSeconds - 600));
}

/** SendCommand's execution timeout for a script that waits `wait` seconds: never above AWS's maximum. */
export function executionTimeoutSeconds(wait: number): number {
  return Math.min(scriptWaitSeconds(wait) + 600, SSM_LIMITS.maxExecutionTimeoutSeconds);
}

/** What the provider needs of a report: small, so the worker prints it whole whatever the report's size. */
export interface ReportSummary {
  readonly runId: string | null;
  readonly seconds: number | null;
  readonly copySeconds: number | null;
  readonly catchUpSeconds: number | null;
  readonly blackoutSeconds: number | null;
  readonly verified: boolean | null;
  /** The unit was still running when the wait ended. */
  readonly running: boolean;
  /** Waiting again for a command this worker never ran (the worker was replaced meanwhile). */
  readonly lost: boolean;
}

/**
 * The summary of a sync, cutover or migrate report (as `pgrelocate … --json`
 * prints it). Self-contained: its source runs on the worker as it is, so it
 * uses nothing from outside its body.
 */
export function reportSummary(report: unknown): ReportSummary {
  const r = (report ?? {}) as Record<string, unknown>;
  const num = (v: unknown): number | null => (typeof v === 'number' ? v : null);
  // Several databases (--all-databases): one entry per database, its report beside its name or under `result`;
  // a migrate's under `sync` and `cutover`. The whole is the first run's id, the sum of the times, every verification.
  const cut = r['cutover'] as Record<string, unknown> | undefined;
  const each = (r['databases'] ?? r['sync'] ?? (cut && cut['databases'])) as Record<string, unknown>[] | undefined;
  if (Array.isArray(each) && each.length > 0) {
    const parts = each.map((d) => ({ ...(d['result'] as Record<string, unknown> | undefined), ...d }));
    const cuts = ((cut?.['databases'] ?? (r['sync'] ? [] : each)) as Record<string, unknown>[]).map((d) => ({
      ...(d['result'] as Record<string, unknown> | undefined),
      ...d,
    }));
    const sum = (xs: (number | null)[]): number | null =>
      xs.some((x) => x !== null) ? xs.reduce<number>((a, x) => a + (x ?? 0), 0) : null;
    const checks = [...parts, ...cuts]
      .map((d) => d['verification'] as { ok?: unknown } | null | undefined)
      .filter((v) => v && typeof v.ok === 'boolean')
      .map((v) => v!.ok === true);
    return {
      runId: typeof parts[0]!['runId'] === 'string' ? (parts[0]!['runId'] as string) : null,
      seconds: sum(parts.map((d) => num(d['seconds']))),
      copySeconds: sum(parts.map((d) => num((d['copy'] as { seconds?: unknown } | null | undefined)?.seconds) ?? num(d['copySeconds']))),
      catchUpSeconds: sum(parts.map((d) => num(d['catchUpSeconds']))),
      blackoutSeconds: num(r['blackoutSeconds']) ?? num(cut?.['blackoutSeconds']),
      verified: checks.length ? checks.every(Boolean) : null,
      running: r['running'] === true,
      lost: r['lost'] === true,
    };
  }
  const copy = r['copy'] as { seconds?: unknown } | null | undefined;
  const verification = r['verification'] as { ok?: unknown } | null | undefined;
  return {
    runId: typeof r['runId'] === 'string' ? r['runId'] : null,
    seconds: num(r['seconds']),
    copySeconds: num(copy?.seconds) ?? num(r['copySeconds']),
    catchUpSeconds: num(r['catchUpSeconds']),
    blackoutSeconds: num(r['blackoutSeconds']),
    verified: verification && typeof verification.ok === 'boolean' ? verification.ok : null,
    running: r['running'] === true,
    lost: r['lost'] === true,
  };
}

/** Shell-quote one argument for the script SSM runs (POSIX sh: single quotes, a quote as '\\''). */
export function shq(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

/**
 * The commands SSM runs on the worker: wait until cloud-init has finished
 * (the CLI and the unit are installed by it), start `pgrelocate@<command>`
 * unless it is already under way (or `start` is false: a later `pulumi up`
 * waiting again for the run it started), and wait for it at most
 * `waitSeconds`; past that, print `{"running":true}` and leave it running. The
 * report itself stays on the worker: only its summary is printed, far below
 * SSM's output cap.
 */
export function ssmScript(args: readonly string[], waitSeconds: number, start = true): string[] {
  const unit = `pgrelocate@${args[0]!}.service`;
  const rest = args.slice(1);
  // NUL-separated, read back with bash's mapfile by pgrelocate-run: an argument with spaces, quotes or newlines stays one.
  const writeArgs = rest.length ? `printf '%s\\0' ${rest.map(shq).join(' ')}` : ':';
  const summarize = `const f=${reportSummary.toString()};const t=require('fs').readFileSync(process.argv[1],'utf8');const i=t.lastIndexOf('\\n{');process.stdout.write(JSON.stringify(f(JSON.parse(i>=0?t.slice(i+1):t))))`;
  // Still running: the run's id and phase from \`pgrelocate status\`, so the stack shows which run it waits for.
  const progress = `let t='';process.stdin.on('data',(d)=>(t+=d)).on('end',()=>{let j={};try{j=JSON.parse(t)}catch{}process.stdout.write(JSON.stringify({running:true,runId:j.id??null,phase:j.phase??null}))})`;
  return [
    'set -u',
    'cloud-init status --wait >/dev/null 2>&1 || true',
    // activating, reloading and deactivating are under way too: only inactive or failed means it ended.
    `running() { case "$(systemctl show -p ActiveState --value ${unit})" in active|activating|reloading|deactivating) return 0;; *) return 1;; esac; }`,
    ...(start
      ? [
          `${writeArgs} > /etc/pgrelocate/args-${args[0]!}`,
          `if ! running; then : > /data/logs/${args[0]!}.json; systemctl start --no-block ${unit}; fi`,
        ]
      : [`if ! running && [ ! -s /data/logs/${args[0]!}.json ]; then echo '{"lost":true}'; exit 0; fi`]),
    `end=$(( $(date +%s) + ${scriptWaitSeconds(waitSeconds)} ))`,
    `while running; do [ "$(date +%s)" -ge "$end" ] && { /usr/local/bin/pgrelocate-run status 2>/dev/null | node -e ${shq(progress)}; exit 0; }; sleep 5; done`,
    `if [ "$(systemctl show -p Result --value ${unit})" != success ]; then tail -n 40 /data/logs/${args[0]!}.log >&2; exit 1; fi`,
    `node -e ${shq(summarize)} /data/logs/${args[0]!}.json`,
  ];
}

/**
 * SendCommand, retried while SSM does not know the instance yet: its agent
 * registers some time after the instance is `running` (InvalidInstanceId).
 */
export async function sendWithRetry<T>(
  send: () => Promise<T>,
  opts: { readonly attempts?: number; readonly delayMs?: number; readonly sleep?: (ms: number) => Promise<void> } = {},
): Promise<T> {
  const attempts = opts.attempts ?? 60;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  for (let i = 1; ; i++) {
    try {
      return await send();
    } catch (e) {
      if ((e as { name?: string }).name !== 'InvalidInstanceId' || i >= attempts) throw e;
      await sleep(opts.delayMs ?? 10_000);
    }
  }
}
