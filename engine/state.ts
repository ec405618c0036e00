/**
 * Run state, kept in the target database's `pgrelocate` schema so any process
 * (the CLI's `status`, the Pulumi provider) can read where a run stands.
 * The schema is excluded from dumps and verification, and `cleanup` drops it.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { StepProgress } from './runner';
import { withClient, type ConnInfo } from './conn';
import { lockHolder, type LockHolder } from './run-lock';

export const STATE_SCHEMA = 'pgrelocate';

const DDL = `
CREATE SCHEMA IF NOT EXISTS pgrelocate;
CREATE TABLE IF NOT EXISTS pgrelocate.runs (
  id text PRIMARY KEY,
  strategy text NOT NULL,
  source text NOT NULL,
  status text NOT NULL,
  phase text,
  started_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  report jsonb
);
CREATE TABLE IF NOT EXISTS pgrelocate.steps (
  run_id text NOT NULL REFERENCES pgrelocate.runs (id) ON DELETE CASCADE,
  name text NOT NULL,
  status text NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  detail jsonb,
  PRIMARY KEY (run_id, name)
);
ALTER TABLE pgrelocate.runs ADD COLUMN IF NOT EXISTS meta jsonb;
ALTER TABLE pgrelocate.steps ADD COLUMN IF NOT EXISTS progress jsonb;
CREATE TABLE IF NOT EXISTS pgrelocate.source_schema (
  run_id text NOT NULL REFERENCES pgrelocate.runs (id) ON DELETE CASCADE,
  kind text NOT NULL,
  tbl text NOT NULL,
  name text NOT NULL,
  def text NOT NULL,
  PRIMARY KEY (run_id, kind, tbl, name)
);
`;

export type StepStatus = 'running' | 'done' | 'failed' | 'skipped';

export interface StepRecord {
  readonly name: string;
  readonly status: StepStatus;
  readonly startedAt: string;
  readonly finishedAt: string | null;
  readonly detail: unknown;
  /** The last progress a running step recorded (bytes, rate, ETA). */
  readonly progress: StepProgress | null;
}

export interface RunRecord {
  readonly id: string;
  readonly strategy: string;
  readonly source: string;
  readonly status: string;
  readonly phase: string | null;
  readonly startedAt: string;
  readonly finishedAt: string | null;
  readonly report: unknown;
  readonly meta: unknown;
  readonly steps: readonly StepRecord[];
  /** The pgrelocate session working on the target now (its run lock), or null: a `running` run without one has died. */
  readonly holder: LockHolder | null;
}

/** Writes a run's progress into the target. Every write is its own transaction. */
export class RunState {
  private constructor(
    private readonly client: pg.Client,
    readonly runId: string,
  ) {}

  static async create(client: pg.Client, strategy: string, source: string, meta: unknown = null): Promise<RunState> {
    await client.query(DDL);
    const id = randomUUID();
    await client.query(
      `INSERT INTO pgrelocate.runs (id, strategy, source, status, phase, meta) VALUES ($1, $2, $3, 'running', 'start', $4)`,
      [id, strategy, source, JSON.stringify(meta)],
    );
    return new RunState(client, id);
  }

  /** Continue a recorded run (resume, cutover). */
  static async resume(client: pg.Client, runId: string): Promise<RunState> {
    await client.query(DDL);
    await client.query(`UPDATE pgrelocate.runs SET status = 'running', finished_at = NULL WHERE id = $1`, [runId]);
    return new RunState(client, runId);
  }

  async setMeta(meta: unknown): Promise<void> {
    await this.client.query(`UPDATE pgrelocate.runs SET meta = $2 WHERE id = $1`, [this.runId, JSON.stringify(meta)]);
  }

  async setPhase(phase: string, status = 'running'): Promise<void> {
    await this.client.query(`UPDATE pgrelocate.runs SET phase = $2, status = $3 WHERE id = $1`, [this.runId, phase, status]);
  }

  /** One round trip: the cutover records its steps inside the write fence. */
  async stepStarted(name: string): Promise<void> {
    await this.client.query(
      `WITH step AS (
         INSERT INTO pgrelocate.steps (run_id, name, status) VALUES ($1, $2, 'running')
         ON CONFLICT (run_id, name) DO UPDATE SET status = 'running', started_at = now(), finished_at = NULL
       )
       UPDATE pgrelocate.runs SET phase = $2 WHERE id = $1`,
      [this.runId, name],
    );
  }

  async stepProgress(name: string, progress: StepProgress): Promise<void> {
    await this.client.query(`UPDATE pgrelocate.steps SET progress = $3 WHERE run_id = $1 AND name = $2`, [
      this.runId,
      name,
      JSON.stringify(progress),
    ]);
  }

  async stepFinished(name: string, status: StepStatus, detail: unknown): Promise<void> {
    await this.client.query(`UPDATE pgrelocate.steps SET status = $3, finished_at = now(), detail = $4 WHERE run_id = $1 AND name = $2`, [
      this.runId,
      name,
      status,
      JSON.stringify(detail ?? null),
    ]);
  }

  async finish(status: 'done' | 'failed', report: unknown): Promise<void> {
    await this.client.query(`UPDATE pgrelocate.runs SET status = $2, finished_at = now(), report = $3 WHERE id = $1`, [
      this.runId,
      status,
      JSON.stringify(report),
    ]);
  }
}

/** The latest run recorded in the target (or a given one), with its steps. */
export async function readRun(target: ConnInfo, runId?: string): Promise<RunRecord | null> {
  return withClient(target, 'target', async (c) => {
    // The schema without its state: a new server's fence kept by cleanup after a rollback.
    const exists = await c.query(
      `SELECT 1 WHERE to_regclass('pgrelocate.runs') IS NOT NULL AND to_regclass('pgrelocate.steps') IS NOT NULL`,
    );
    if (exists.rowCount === 0) return null;
    const run = await c.query<{
      id: string;
      strategy: string;
      source: string;
      status: string;
      phase: string | null;
      started_at: Date;
      finished_at: Date | null;
      report: unknown;
      meta: unknown;
    }>(`SELECT * FROM pgrelocate.runs ${runId ? 'WHERE id = $1' : ''} ORDER BY started_at DESC LIMIT 1`, runId ? [runId] : []);
    const r = run.rows[0];
    if (!r) return null;
    const steps = await c.query<{
      name: string;
      status: StepStatus;
      started_at: Date;
      finished_at: Date | null;
      detail: unknown;
      progress: StepProgress | null;
    }>(
      // to_jsonb(s): a state written before the progress column existed reads as null progress.
      `SELECT name, status, started_at, finished_at, detail, to_jsonb(s) -> 'progress' AS progress FROM pgrelocate.steps s WHERE run_id = $1 ORDER BY started_at`,
      [r.id],
    );
    const holder = await lockHolder(c).catch(() => null);
    return {
      holder,
      id: r.id,
      strategy: r.strategy,
      source: r.source,
      status: r.status,
      phase: r.phase,
      startedAt: r.started_at.toISOString(),
      finishedAt: r.finished_at?.toISOString() ?? null,
      report: r.report,
      meta: r.meta ?? null,
      steps: steps.rows.map((s) => ({
        name: s.name,
        status: s.status,
        startedAt: s.started_at.toISOString(),
        finishedAt: s.finished_at?.toISOString() ?? null,
        detail: s.detail,
        progress: s.progress ?? null,
      })),
    };
  });
}

/** Remove pgrelocate's state schema from the target. */
export async function dropState(target: ConnInfo): Promise<void> {
  await withClient(target, 'target', async (c) => {
    await c.query('DROP SCHEMA IF EXISTS pgrelocate CASCADE');
  });
}
