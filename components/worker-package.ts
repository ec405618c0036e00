/**
 * The pgrelocate CLI as the worker gets it: the tarball `npm run pack:worker`
 * makes (the engine and the CLI with their runtime dependencies bundled, so
 * nothing is fetched by name on the worker), stored as a private S3 object
 * named by its SHA-256, which the user-data checks before unpacking it.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** The project root, from dist/components. */
const ROOT = path.resolve(__dirname, '..', '..');

/** Where `npm run pack:worker` writes the tarball (dist/worker/pgrelocate-<version>.tgz). */
export function defaultWorkerPackagePath(): string {
  const { name, version } = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
  return path.join(ROOT, 'dist', 'worker', `${name}-${version}.tgz`);
}

export interface WorkerPackage {
  /** The tarball on the machine running `pulumi up`. */
  readonly file: string;
  readonly sha256: string;
  /** The S3 key: content-addressed, so a new tarball is a new object and a new worker, never a silent swap. */
  readonly key: string;
}

/** Read and hash the packed CLI; a missing file is an error that names the command making it. */
export function readWorkerPackage(file = defaultWorkerPackagePath()): WorkerPackage {
  const abs = path.resolve(ROOT, file);
  if (!existsSync(abs))
    throw new Error(
      `The worker's pgrelocate package ${abs} does not exist. Fix: run \`npm run pack:worker\` in ${ROOT} (or set pgrelocate:aws.workerPackage to a tarball it made).`,
    );
  const sha256 = createHash('sha256').update(readFileSync(abs)).digest('hex');
  return { file: abs, sha256, key: `pgrelocate/${sha256}.tgz` };
}
