/**
 * Post-data, pipelined with the copy: as soon as a table's rows are all in,
 * its indexes and primary/unique constraints are built (one `pg_restore -L`
 * per table, N at a time) while other tables are still copying. Foreign keys,
 * triggers and everything that spans tables follow once every table is in.
 * On a 2-core machine this is what hides a long single-threaded index build
 * (a GIN index on a big jsonb column) behind the rest of the copy.
 */
import { writeFileSync } from 'node:fs';
import type pg from 'pg';
import type { ConnInfo } from '../conn';
import { PgferryError } from '../errors';
import { parseRestoreErrors, type RestoreError } from '../restore-errors';
import type { Emit } from '../runner';
import { libpqUrl, runTool } from '../tool-exec';
import type { ClientTools } from '../tools';
import { RESTORE_SESSION_OPTIONS } from './schema';

export interface TocEntry {
  readonly line: string;
  readonly type: string;
  readonly schema: string;
  readonly tag: string;
}

/** Types pg_restore puts in the post-data section that belong to one table. */
const PER_TABLE = new Set(['INDEX', 'CONSTRAINT']);
const POST_DATA = new Set([
  'INDEX',
  'CONSTRAINT',
  'FK CONSTRAINT',
  'TRIGGER',
  'RULE',
  'POLICY',
  'INDEX ATTACH',
  'EVENT TRIGGER',
  'MATERIALIZED VIEW DATA',
  'STATISTICS',
  'DEFAULT ACL',
  'PUBLICATION',
  'PUBLICATION TABLE',
  'SUBSCRIPTION',
]);
const TYPES = [
  ...POST_DATA,
  'TABLE',
  'TABLE DATA',
  'SEQUENCE',
  'VIEW',
  'FUNCTION',
  'SCHEMA',
  'TYPE',
  'DOMAIN',
  'EXTENSION',
  'COMMENT',
  'ACL',
  'DEFAULT',
].sort((a, b) => b.length - a.length);

/** Parse `pg_restore -l` output: `123; 1259 16420 INDEX app orders_user_idx owner`. Pure. */
export function parseToc(text: string): TocEntry[] {
  const out: TocEntry[] = [];
  for (const line of text.split('\n')) {
    const m = /^\d+; \d+ \d+ (.*)$/.exec(line);
    if (!m) continue;
    const rest = m[1]!;
    const type = TYPES.find((t) => rest.startsWith(t + ' '));
    if (!type) continue;
    const after = rest.slice(type.length + 1).split(' ');
    // schema, then the tag (one or more words), then the owner
    out.push({ line, type, schema: after[0] ?? '', tag: after.slice(1, -1).join(' ') });
  }
  return out;
}

/**
 * Split the post-data entries into per-table lists and the rest. `indexTable`
 * maps "schema.index" to "schema.table" (from the source catalog). Pure.
 */
export function splitPostData(
  entries: readonly TocEntry[],
  indexTable: ReadonlyMap<string, string>,
  tables: ReadonlySet<string>,
): { perTable: Map<string, string[]>; rest: string[] } {
  const perTable = new Map<string, string[]>();
  const rest: string[] = [];
  for (const e of entries) {
    if (!POST_DATA.has(e.type)) continue;
    let table: string | undefined;
    if (e.type === 'INDEX') table = indexTable.get(`${e.schema}.${e.tag}`);
    else if (e.type === 'CONSTRAINT') {
      const t = `${e.schema}.${e.tag.split(' ')[0]}`;
      if (tables.has(t)) table = t;
    }
    if (table && PER_TABLE.has(e.type)) {
      const list = perTable.get(table) ?? [];
      list.push(e.line);
      perTable.set(table, list);
    } else rest.push(e.line);
  }
  return { perTable, rest };
}

/** "schema.index" → "schema.table" for every index on the source (unquoted names, as pg_restore -l prints them). */
export async function indexTables(source: pg.Client): Promise<Map<string, string>> {
  const r = await source.query<{ i: string; t: string }>(
    `SELECT n.nspname || '.' || ic.relname AS i, n.nspname || '.' || tc.relname AS t
       FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid JOIN pg_class tc ON tc.oid = x.indrelid
       JOIN pg_namespace n ON n.oid = tc.relnamespace`,
  );
  return new Map(r.rows.map((x) => [x.i, x.t]));
}

/** Runs per-table post-data as tables finish copying, then the rest. */
export class PostDataPipeline {
  private readonly running: Promise<void>[] = [];
  private readonly queue: string[] = [];
  private active = 0;
  private readonly errors: RestoreError[] = [];
  private failure: Error | null = null;
  private seq = 0;
  private readonly reported = new Set<string>();

  constructor(
    private readonly tools: ClientTools,
    private readonly target: ConnInfo,
    private readonly dumpFile: string,
    private readonly workDir: string,
    private readonly split: { perTable: Map<string, string[]>; rest: string[] },
    private readonly jobs: number,
    private readonly resumed: boolean,
    private readonly emit: Emit,
  ) {}

  private async restore(lines: readonly string[], label: string, parallel: number): Promise<void> {
    if (lines.length === 0) return;
    const list = `${this.workDir}/post-${this.seq++}.list`;
    writeFileSync(list, lines.join('\n') + '\n');
    const args = [
      '-Fc',
      '-L',
      list,
      '--no-tablespaces',
      '-v',
      ...(parallel > 1 ? ['-j', String(parallel)] : []),
      '-d',
      libpqUrl(this.target),
      this.dumpFile,
    ];
    const r = await runTool(this.tools.pgRestore, args, [this.target], { env: { PGOPTIONS: RESTORE_SESSION_OPTIONS } });
    const errs = parseRestoreErrors(r.stderr).map((e) =>
      !e.expected && this.resumed && /already exists/.test(e.message)
        ? { ...e, expected: true, reason: 'created by the interrupted attempt' }
        : e,
    );
    this.errors.push(...errs);
    const real = errs.filter((e) => !e.expected);
    if (real.length > 0 || (r.exitCode !== 0 && errs.length === 0)) {
      throw new PgferryError(
        'schema-restore-failed',
        `Building ${label} failed:\n  ${real.map((e) => `${e.message}${e.command ? ` [${e.command.slice(0, 160)}]` : ''}`).join('\n  ') || r.stderr.split('\n').slice(-6).join('\n  ')}`,
        'Fix the cause on the target, then rerun sync; it resumes.',
        { errors: errs },
      );
    }
  }

  private pump(): void {
    while (this.active < this.jobs && this.queue.length > 0) {
      const table = this.queue.shift()!;
      const lines = this.split.perTable.get(table) ?? [];
      this.active++;
      const t0 = Date.now();
      // Two at a time within a table: its short btree builds run beside its long one.
      const p = this.restore(lines, `the indexes of ${table}`, Math.min(2, lines.length))
        .then(() =>
          this.emit({
            type: 'log',
            level: 'info',
            message: `indexes of ${table} built in ${((Date.now() - t0) / 1000).toFixed(1)}s`,
          }),
        )
        .catch((e: Error) => {
          this.failure ??= e;
        })
        .finally(() => {
          this.active--;
          this.pump();
        });
      this.running.push(p);
    }
  }

  /** A table's rows are all copied: build its indexes now. `table` is "schema.table", unquoted. */
  tableCopied(table: string): void {
    if (!this.split.perTable.has(table) || this.reported.has(table)) return;
    this.reported.add(table);
    this.queue.push(table);
    this.pump();
  }

  /** Wait for the per-table builds, then restore the rest (FKs, triggers, attachments) with N jobs. */
  async finish(): Promise<RestoreError[]> {
    // Tables never reported (nothing to copy) still get their indexes.
    for (const t of this.split.perTable.keys()) this.tableCopied(t);
    while (this.running.length > 0) await this.running.shift();
    if (this.failure) throw this.failure;
    await this.restore(this.split.rest, 'foreign keys, triggers and the rest of post-data', this.jobs);
    return this.errors;
  }
}
