/**
 * pg_restore keeps going after errors and lists them on stderr. Some are
 * expected on a managed or pre-provisioned target (seed 000: "role … already
 * exists", "schema public already exists", extensions the provider installed,
 * COMMENT ON EXTENSION by a non-owner); every other one is real and fails the run.
 */

import { MANAGED_ROLE } from './globals';

export interface RestoreError {
  /** The server's message, e.g. `schema "public" already exists`. */
  readonly message: string;
  /** The statement pg_restore ran, when it printed one (passwords removed upstream). */
  readonly command: string | null;
  /** The TOC entry, e.g. `TOC entry 5; 2615 2200 SCHEMA public postgres`. */
  readonly tocEntry: string | null;
  readonly expected: boolean;
  /** Why an expected error is harmless. */
  readonly reason: string | null;
}

const EXPECTED: readonly { re: RegExp; reason: string }[] = [
  {
    re: /^(schema|extension|language|role|database) "[^"]*" already exists/i,
    reason: 'already exists on the target (created by the provider or by an earlier step)',
  },
  { re: /^must be owner of (extension|schema public|language)\b/i, reason: 'owned by the managed service on the target' },
  { re: /^permission denied to (create|alter) extension "plpgsql"/i, reason: 'plpgsql is managed by the target' },
  {
    re: /^must be superuser to create FOR (ALL TABLES|TABLES IN SCHEMA|ALL TABLES IN SCHEMA) publication/i,
    reason: 'only a superuser may create this publication: create it on the target after the cutover (check warns of it)',
  },
];

const EXPECTED_COMMANDS: readonly { re: RegExp; reason: string }[] = [
  { re: /^COMMENT ON EXTENSION\b/i, reason: 'extension comments belong to the extension owner on the target' },
];

export function classify(message: string, command: string | null): { expected: boolean; reason: string | null } {
  const msg = message.replace(/^ERROR:\s+/, '').trim();
  for (const e of EXPECTED) if (e.re.test(msg)) return { expected: true, reason: e.reason };
  // An object the source's service owned (RDS's rdsadmin owns public in ≤ 14): the target's service owns its own.
  const owner = /\bOWNER TO "?([^";\s]+)"?;?\s*$/i.exec(command ?? '')?.[1];
  if (owner && MANAGED_ROLE.test(owner) && /must be (able to SET ROLE|member of role)/i.test(msg))
    return { expected: true, reason: `owned by the source service's own role ${owner}; on the target it keeps the target's owner` };
  if (command) for (const e of EXPECTED_COMMANDS) if (e.re.test(command.trim())) return { expected: true, reason: e.reason };
  return { expected: false, reason: null };
}

/** Parse pg_restore's stderr (verbose or not) into its errors. */
export function parseRestoreErrors(stderr: string): RestoreError[] {
  const lines = stderr.split('\n');
  const out: RestoreError[] = [];
  let toc: string | null = null;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const tocMatch = /^pg_restore: (?:from )?(TOC entry .*)$/.exec(line);
    if (tocMatch) {
      toc = tocMatch[1] ?? null;
      continue;
    }
    const m = /^pg_restore: error: (.*)$/.exec(line);
    if (!m) continue;
    let message = m[1] ?? '';
    const q = /^could not execute query: (.*)$/.exec(message);
    if (q) message = q[1] ?? '';
    // continuation lines (DETAIL/HINT) until "Command was:" or the next pg_restore line
    let command: string | null = null;
    let j = i + 1;
    for (; j < lines.length; j++) {
      const l = lines[j]!;
      if (l.startsWith('pg_restore:')) break;
      const c = /^Command was: (.*)$/.exec(l);
      if (c) {
        const cmd = [c[1] ?? ''];
        for (j = j + 1; j < lines.length && !lines[j]!.startsWith('pg_restore:'); j++) cmd.push(lines[j]!);
        command = cmd.join('\n').trim();
        break;
      }
      if (l.trim()) message += '\n' + l.trim();
    }
    i = j - 1;
    message = message.replace(/^ERROR:\s+/, '').trim();
    const { expected, reason } = q ? classify(message, command) : { expected: false, reason: null };
    out.push({ message, command, tocEntry: toc, expected, reason });
    toc = null;
  }
  return out;
}

/** What restoring an object the interrupted attempt already created says. */
const RESTORED_BEFORE = /already exists|multiple primary keys for table .* are not allowed|is already member of publication/;

/**
 * On a resumed run, what the interrupted attempt already created: "… already
 * exists", a primary key added a second time, a table added to a publication
 * a second time. Those errors are expected then. Pure.
 */
export function markResumed(errors: readonly RestoreError[], resumed: boolean): RestoreError[] {
  return errors.map((e) =>
    !e.expected && resumed && RESTORED_BEFORE.test(e.message) ? { ...e, expected: true, reason: 'created by the interrupted attempt' } : e,
  );
}
