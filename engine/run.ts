/**
 * What every run shares, whatever the command and strategy: a state session
 * on the target, the run created or resumed in it, the body, the run marked
 * failed when the body throws, the session closed; and a scratch directory
 * that does not outlive the run.
 */
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import { connect, type ConnInfo } from './conn';
import { RunState } from './state';

/** How a run is opened: a new one for this strategy and source, or a recorded one resumed. */
export type OpenRun = { readonly create: { readonly strategy: string; readonly source: string } } | { readonly resume: string };

export async function withRunState<T>(
  target: ConnInfo,
  open: OpenRun,
  body: (state: RunState) => Promise<T>,
  /** Record the failure in the state (best effort: the body's error is what the user sees). */
  failed: (state: RunState) => Promise<void>,
): Promise<T> {
  const client: pg.Client = await connect(target, 'target');
  try {
    const state =
      'create' in open
        ? await RunState.create(client, open.create.strategy, open.create.source)
        : await RunState.resume(client, open.resume);
    try {
      return await body(state);
    } catch (e) {
      await failed(state).catch(() => undefined);
      throw e;
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A private scratch directory for a run (the schema dump), removed when `body` ends unless `keep` says otherwise. */
export async function withScratchDir<T>(
  workDir: string,
  name: string,
  body: (dir: string) => Promise<T>,
  keep: (failed: boolean) => boolean = () => false,
): Promise<T> {
  const dir = path.join(workDir, name);
  mkdirSync(dir, { recursive: true });
  let failed = true;
  try {
    const r = await body(dir);
    failed = false;
    return r;
  } finally {
    if (!keep(failed)) rmSync(dir, { recursive: true, force: true });
  }
}
