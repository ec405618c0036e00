/**
 * How a fix names an option: the CLI's flag, or the Pulumi config key when
 * pgrelocate runs under Pulumi (in process, or on the worker with
 * PGRELOCATE_FRONT_END=pulumi), so the advice matches what the user can change.
 * Both spellings come from the options table (engine/options.ts).
 */
import { flagOf, PULUMI_OPTIONS, type OptionName as TableOption } from './options';

export type FrontEnd = 'cli' | 'pulumi';
export type OptionName = TableOption | 'strategy';

let current: FrontEnd = process.env['PGRELOCATE_FRONT_END'] === 'pulumi' ? 'pulumi' : 'cli';

/** Set by the front end before it calls the engine (the Pulumi run driver in process). */
export function setFrontEnd(f: FrontEnd): void {
  current = f;
}

/** The option as the user sets it; under Pulumi, a CLI-only option is named as such. Pure given the front end. */
export function opt(name: OptionName, frontEnd: FrontEnd = current): string {
  if (name === 'strategy') return frontEnd === 'cli' ? '--strategy' : 'pgrelocate:strategy';
  const flag = flagOf(name);
  const pulumi = PULUMI_OPTIONS.includes(name) ? `pgrelocate:options.${name}` : null;
  if (frontEnd === 'cli') return flag ?? `pgrelocate:options.${name}`;
  return pulumi ?? `the CLI's ${flag} (run pgrelocate from the worker)`;
}
