/**
 * `npm run pack:worker`: pack the engine and the CLI with their runtime
 * dependencies bundled (package.json `bundleDependencies`) into
 * dist/worker/pgrelocate-<version>.tgz. The cloud stacks upload it to a
 * private S3 object the worker unpacks after checking its SHA-256: the worker
 * installs nothing from the npm registry. npm pack is the packer so the
 * tarball holds what `files` and the lockfile's tree say, nothing hand-picked.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { execaSync } from 'execa';
import { defaultWorkerPackagePath, readWorkerPackage } from '../components/worker-package';

function main(): void {
  const target = defaultWorkerPackagePath();
  mkdirSync(path.dirname(target), { recursive: true });
  // --ignore-scripts: dist/ is built already (npm run build ran first); prepare would build it again.
  execaSync('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', path.dirname(target)], {
    cwd: path.resolve(__dirname, '..', '..'),
  });
  const pkg = readWorkerPackage(target);
  process.stdout.write(`${pkg.file}\nsha256 ${pkg.sha256}\n`);
}

if (require.main === module) main();
