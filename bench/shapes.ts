/**
 * Data shaped like users' data, for `npm run bench -- copy --shape …`. The
 * sample alone flatters a tool that pipelines index builds (one large GIN
 * build is its critical path); these shapes put the weight elsewhere:
 *
 *   sample      pgrelocate's own sample (schemas, partitions, GIN, TOAST, a domain).
 *   pgbench     `pgbench -i -s N` (one large narrow table with a primary key) beside a
 *               small sample: CPU per row and per byte decide.
 *   many-small  thousands of tables of a few rows, each with a key and an index:
 *               round trips per object decide.
 *   wide-toast  wide rows of large TOASTed text, bytea and jsonb: bytes per second decide.
 */
import { execa } from 'execa';
import { withClient, type ConnInfo } from '../engine/conn';
import { runTool } from '../engine/tool-exec';
import { loadSample } from '../scripts/sample-db';

export const SHAPES = ['sample', 'pgbench', 'many-small', 'wide-toast'] as const;
export type Shape = (typeof SHAPES)[number];

/** pgbench's scale factor for a size: one unit is 100,000 accounts, about 15 MB with their key. Pure. */
export function pgbenchScale(bytes: number): number {
  return Math.max(1, Math.round(bytes / 15e6));
}

/** How many small tables make a size: each holds 10 rows, a key and an index, about 40 kB on disk; 1,000 at least. Pure. */
export function smallTables(bytes: number): number {
  return Math.min(20_000, Math.max(1_000, Math.round(bytes / 40e3)));
}

/** How many wide rows make a size: each carries about 100 kB of text, bytea and jsonb. Pure. */
export function wideRows(bytes: number): number {
  return Math.max(100, Math.round(bytes / 100e3));
}

export interface LoadedShape {
  readonly shape: Shape;
  /** What was made, for the report ("pgbench -s 30 + 5 MB sample"). */
  readonly description: string;
}

/** Make `shape` at about `bytes` in the empty database `conn`. */
export async function loadShape(shape: Shape, conn: ConnInfo, bytes: number, log: (l: string) => void): Promise<LoadedShape> {
  switch (shape) {
    case 'sample':
      await loadSample(conn, { sizeBytes: bytes, log });
      return { shape, description: `sample ${Math.round(bytes / 1e6)} MB` };
    case 'pgbench': {
      // The dataset: pgbench's tables beside a small public schema.
      await loadSample(conn, { sizeBytes: 5e6, log });
      const scale = pgbenchScale(bytes);
      const bin = (await execa('sh', ['-c', 'command -v pgbench'], { reject: false })).stdout.trim();
      if (!bin) throw new Error('pgbench is not installed. Fix: apt-get install -y postgresql-15 (Debian ships pgbench with the server)');
      log(`  pgbench -i -s ${scale} …`);
      const r = await runTool(
        bin,
        ['-i', '-q', '-s', String(scale), '-h', conn.host, '-p', String(conn.port), '-U', conn.user, conn.database],
        [conn],
      );
      if (r.exitCode !== 0) throw new Error(`pgbench -i failed: ${r.stderr.split('\n').slice(-3).join(' ')}`);
      return { shape, description: `pgbench -s ${scale} + 5 MB sample` };
    }
    case 'many-small': {
      const n = smallTables(bytes);
      log(`  ${n} small tables …`);
      await withClient(conn, 'source', async (c) => {
        await c.query('SET synchronous_commit = off');
        await c.query('CREATE SCHEMA many');
        // In batches of 250: one transaction per batch keeps the lock table small.
        for (let from = 1; from <= n; from += 250)
          await c.query(
            `DO $$ BEGIN
               FOR i IN ${from}..${Math.min(n, from + 249)} LOOP
                 EXECUTE format('CREATE TABLE many.t%s (id int PRIMARY KEY, ref int NOT NULL, name text, at timestamptz NOT NULL DEFAULT now())', i);
                 EXECUTE format('CREATE INDEX ON many.t%s (ref)', i);
                 EXECUTE format('INSERT INTO many.t%s (id, ref, name) SELECT g, g %% 3, md5(g::text) FROM generate_series(1, 10) g', i);
               END LOOP;
             END $$`,
          );
      });
      return { shape, description: `${n.toLocaleString('en-US')} tables of 10 rows, each with a key and an index` };
    }
    case 'wide-toast': {
      const rows = wideRows(bytes);
      log(`  ${rows} wide rows …`);
      await withClient(conn, 'source', async (c) => {
        await c.query('SET synchronous_commit = off');
        await c.query('CREATE SCHEMA wide');
        await c.query(`CREATE TABLE wide.docs (id bigint PRIMARY KEY, title text NOT NULL, body text, payload bytea, doc jsonb)`);
        // md5 text compresses about 2:1, its bytes not at all, the jsonb somewhat: TOAST stores each its way.
        for (let from = 1; from <= rows; from += 500)
          await c.query(
            `INSERT INTO wide.docs
             SELECT g, 'document ' || g,
                    (SELECT string_agg(md5(g::text || ':' || i), ' ') FROM generate_series(1, 1200) i),
                    (SELECT decode(string_agg(md5(i::text || ':' || g), ''), 'hex') FROM generate_series(1, 1500) i),
                    (SELECT jsonb_agg(jsonb_build_object('i', i, 'k', md5(i::text || g), 'v', i * g % 997)) FROM generate_series(1, 200) i)
               FROM generate_series($1::bigint, $2::bigint) g`,
            [from, Math.min(rows, from + 499)],
          );
        await c.query('ANALYZE wide.docs');
      });
      return { shape, description: `${rows.toLocaleString('en-US')} rows of about 100 kB (text, bytea, jsonb)` };
    }
  }
}
