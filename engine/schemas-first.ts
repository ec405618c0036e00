/**
 * Schemas and their grants before everything else. pg_restore grants
 * privileges in a pass of its own, after every object; as a superuser that
 * does not matter, but a managed service's user (RDS master, Heroku owner)
 * restoring `ALTER TABLE … OWNER TO app` needs `app` to hold CREATE on the
 * schema already ("permission denied for schema"). So a restore runs twice:
 * the schema entries and their ACLs first, then the rest of its list.
 */
import { rmSync, writeFileSync } from 'node:fs';
import type { ConnInfo } from './conn';
import { parseRestoreErrors, type RestoreError } from './restore-errors';
import { runTool } from './tool-exec';

/** Does this `pg_restore -l` line restore a schema or a schema's grants? Pure. */
export function isSchemaEntry(line: string): boolean {
  return /^\d+; \d+ \d+ (SCHEMA -|ACL - SCHEMA) /.test(line);
}

/** A restore list split into the schema entries (with their ACLs) and the rest, or null when no schema has grants. Pure. */
export function splitSchemaEntries(list: string): { readonly first: string[]; readonly rest: string[] } | null {
  const lines = list.split('\n').filter((l) => l.trim() && !l.startsWith(';'));
  if (!lines.some((l) => /^\d+; \d+ \d+ ACL - SCHEMA /.test(l))) return null;
  return { first: lines.filter(isSchemaEntry), rest: lines.filter((l) => !isSchemaEntry(l)) };
}

/** The first pass's arguments from the main restore's: no parallelism, no --clean (it would drop non-empty schemas). Pure. */
export function firstPassArgs(mainArgs: readonly string[], listFile: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < mainArgs.length; i++) {
    const a = mainArgs[i]!;
    if (a === '-j') {
      i++;
      continue;
    }
    if (a === '--clean' || a === '--if-exists') continue;
    out.push(a);
  }
  return withList(out, listFile);
}

/** `-L list` inserted before the archive (the last argument). Pure. */
export function withList(args: readonly string[], listFile: string): string[] {
  return [...args.slice(0, -1), '-L', listFile, args[args.length - 1]!];
}

/**
 * Restore the schemas and their grants of `archive` (the last of `mainArgs`)
 * first; returns that pass's errors and the arguments for the rest.
 */
export async function restoreSchemasFirst(
  pgRestore: string,
  target: ConnInfo,
  mainArgs: readonly string[],
  opts: { readonly section?: 'pre-data'; readonly env?: Readonly<Record<string, string>> } = {},
): Promise<{
  readonly errors: RestoreError[];
  readonly args: string[];
  /** The entries `args` restores (the archive's list without the schemas already restored), or null if it could not be listed. */
  readonly entries: string[] | null;
  readonly cleanup: () => void;
}> {
  const archive = mainArgs[mainArgs.length - 1]!;
  const format = mainArgs.find((a) => /^-F[cd]$/.test(a)) ?? '-Fc';
  const listed = await runTool(pgRestore, [format, '-l', ...(opts.section ? [`--section=${opts.section}`] : []), archive], [], {
    captureStdout: true,
  });
  const split = listed.exitCode === 0 ? splitSchemaEntries(listed.stdout) : null;
  if (!split)
    return {
      errors: [],
      args: [...mainArgs],
      entries: listed.exitCode === 0 ? listed.stdout.split('\n').filter((l) => l.trim() && !l.startsWith(';')) : null,
      cleanup: () => undefined,
    };
  const firstFile = `${archive.replace(/\/$/, '')}.schemas.list`;
  const restFile = `${archive.replace(/\/$/, '')}.rest.list`;
  writeFileSync(firstFile, split.first.join('\n') + '\n');
  writeFileSync(restFile, split.rest.join('\n') + '\n');
  const r = await runTool(pgRestore, firstPassArgs(mainArgs, firstFile), [target], opts.env ? { env: opts.env } : {});
  return {
    errors: parseRestoreErrors(r.stderr),
    args: withList(mainArgs, restFile),
    entries: split.rest,
    cleanup: () => {
      rmSync(firstFile, { force: true });
      rmSync(restFile, { force: true });
    },
  };
}
