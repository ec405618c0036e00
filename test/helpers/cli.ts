/** Run the real CLI in a child process, as a user or a script would. */
import path from 'node:path';
import { execa } from 'execa';

export interface CliResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  /** Wall time until the process ended. */
  readonly seconds: number;
}

const CLI = path.resolve(__dirname, '..', '..', 'scripts', 'cli.js');

export async function pgrelocate(args: readonly string[], env: Record<string, string> = {}): Promise<CliResult> {
  const t0 = Date.now();
  const r = await execa(process.execPath, [CLI, ...args], {
    reject: false,
    env: { ...env, PGRELOCATE_SOURCE_URL: env['PGRELOCATE_SOURCE_URL'] ?? '', PGRELOCATE_TARGET_URL: env['PGRELOCATE_TARGET_URL'] ?? '' },
    timeout: 300_000,
  });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr), seconds: (Date.now() - t0) / 1000 };
}
