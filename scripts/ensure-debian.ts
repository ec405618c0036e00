/**
 * Make sure the Debian packages the tests use are installed (scripts/debian-packages.txt).
 * As root, install the missing ones; otherwise print the exact install line and fail.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { execaSync } from 'execa';

export function packageList(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean);
}

function installed(pkg: string): boolean {
  const r = execaSync('dpkg-query', ['-W', '-f=${Status}', pkg], { reject: false });
  return r.exitCode === 0 && String(r.stdout).includes('install ok installed');
}

function main(): number {
  const list = packageList(readFileSync(path.resolve(__dirname, '..', '..', 'scripts', 'debian-packages.txt'), 'utf8'));
  if (execaSync('sh', ['-c', 'command -v dpkg-query'], { reject: false }).exitCode !== 0) {
    process.stderr.write(
      `ensure-debian: not a Debian system; tests needing ${list.join(', ')} will be skipped where their binaries are missing.\n`,
    );
    return 0;
  }
  const missing = list.filter((p) => !installed(p));
  if (missing.length === 0) return 0;
  const line = `apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing.join(' ')}`;
  if (process.getuid?.() !== 0) {
    process.stderr.write(`ensure-debian: missing Debian packages: ${missing.join(' ')}\nInstall them as root:\n  ${line}\n`);
    return 1;
  }
  process.stderr.write(`ensure-debian: installing ${missing.join(' ')}\n`);
  const r = execaSync('sh', ['-c', line], { reject: false, stdio: 'inherit' });
  return r.exitCode ?? 1;
}

if (require.main === module) process.exitCode = main();
