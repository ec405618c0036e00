/**
 * How a fix names an option: the CLI's flag, or the Pulumi config key when
 * pgrelocate runs under Pulumi (in process, or on the worker with
 * PGRELOCATE_FRONT_END=pulumi), so the advice matches what the user can change.
 */
export type FrontEnd = 'cli' | 'pulumi';

const OPTIONS = {
  maxLag: { cli: '--max-lag', pulumi: 'pgrelocate:options.maxLag' },
  catchUpTimeout: { cli: '--catch-up-timeout', pulumi: 'pgrelocate:options.waitSeconds' },
  replicaIdentityFull: { cli: '--replica-identity-full', pulumi: 'pgrelocate:options.replicaIdentityFull' },
  strategy: { cli: '--strategy', pulumi: 'pgrelocate:strategy' },
  force: { cli: '--force', pulumi: null },
  workDir: { cli: '--work-dir', pulumi: null },
  skipGlobals: { cli: '--skip-globals', pulumi: null },
  sourceUrlFromTarget: { cli: '--source-url-from-target', pulumi: null },
  bucardoUrl: { cli: '--bucardo-url', pulumi: null },
} as const satisfies Record<string, { cli: string; pulumi: string | null }>;
export type OptionName = keyof typeof OPTIONS;

let current: FrontEnd = process.env['PGRELOCATE_FRONT_END'] === 'pulumi' ? 'pulumi' : 'cli';

/** Set by the front end before it calls the engine (the Pulumi run driver in process). */
export function setFrontEnd(f: FrontEnd): void {
  current = f;
}

/** The option as the user sets it; under Pulumi, a CLI-only option is named as such. Pure given the front end. */
export function opt(name: OptionName, frontEnd: FrontEnd = current): string {
  const o = OPTIONS[name];
  if (frontEnd === 'cli') return o.cli;
  return o.pulumi ?? `the CLI's ${o.cli} (run pgrelocate from the worker)`;
}
