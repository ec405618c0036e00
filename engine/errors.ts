/**
 * Errors that say what went wrong and what to do about it, with exit codes
 * that scripts can rely on (see README "Exit codes").
 */

/** Exit codes of the `pgrelocate` CLI. */
export const ExitCode = {
  ok: 0,
  /** An unexpected failure (a bug, or a server error pgrelocate did not classify). */
  failed: 1,
  /** Bad command line or configuration. */
  usage: 2,
  /** `check` found blocking problems; nothing was changed. */
  checkFailed: 3,
  /** Source and target differ after the copy. */
  verifyFailed: 4,
  /** A server could not be reached or refused the credentials. */
  connection: 5,
  /** A step of the migration failed (restore errors, tool failures). */
  migrationFailed: 6,
  /** Another pgrelocate is working on the same target; nothing was changed. */
  busy: 7,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * Every failure pgrelocate reports, with its exit code: one table, so a new code
 * cannot be added without deciding how scripts see it.
 */
export const ERROR_CODES = {
  // bad input: nothing was changed
  usage: ExitCode.usage,
  'bad-url': ExitCode.usage,
  // servers out of reach
  'auth-failed': ExitCode.connection,
  'no-database': ExitCode.connection,
  unreachable: ExitCode.connection,
  'connect-failed': ExitCode.connection,
  // refused before anything changed
  'check-failed': ExitCode.checkFailed,
  'run-busy': ExitCode.busy,
  'no-run': ExitCode.migrationFailed,
  'already-cut-over': ExitCode.migrationFailed,
  'not-streaming': ExitCode.migrationFailed,
  'no-client-tools': ExitCode.migrationFailed,
  'client-tools-too-old': ExitCode.migrationFailed,
  // verification
  'verify-failed': ExitCode.verifyFailed,
  // a step failed
  'step-failed': ExitCode.migrationFailed,
  'globals-failed': ExitCode.migrationFailed,
  'schema-dump-failed': ExitCode.migrationFailed,
  'schema-restore-failed': ExitCode.migrationFailed,
  'dump-failed': ExitCode.migrationFailed,
  'disk-full': ExitCode.migrationFailed,
  'restore-failed': ExitCode.migrationFailed,
  'subscribe-failed': ExitCode.migrationFailed,
  'slot-missing': ExitCode.migrationFailed,
  'slot-busy': ExitCode.migrationFailed,
  'lag-too-high': ExitCode.migrationFailed,
  'apply-timeout': ExitCode.migrationFailed,
  'apply-failing': ExitCode.migrationFailed,
  'schema-changed': ExitCode.migrationFailed,
  'cutover-aborted': ExitCode.migrationFailed,
  'no-such-database': ExitCode.usage,
  'database-create-failed': ExitCode.checkFailed,
  'fence-busy': ExitCode.migrationFailed,
  'fence-failed': ExitCode.migrationFailed,
  'fence-lost': ExitCode.migrationFailed,
  'max-blackout': ExitCode.migrationFailed,
  'cutover-incomplete': ExitCode.migrationFailed,
  'pgbouncer-failed': ExitCode.migrationFailed,
  'no-rollback': ExitCode.usage,
  'hook-failed': ExitCode.migrationFailed,
  done: ExitCode.migrationFailed,
  'pglogical-down': ExitCode.migrationFailed,
  'pglogical-table-sync': ExitCode.migrationFailed,
  'bucardo-missing': ExitCode.migrationFailed,
  'bucardo-no-plperl': ExitCode.migrationFailed,
  'bucardo-control-privilege': ExitCode.migrationFailed,
  'bucardo-failed': ExitCode.migrationFailed,
  'bucardo-copy-failed': ExitCode.migrationFailed,
  'bucardo-copy-timeout': ExitCode.migrationFailed,
  'bucardo-state-missing': ExitCode.migrationFailed,
  'bucardo-triggers-missing': ExitCode.migrationFailed,
  'bucardo-control-busy': ExitCode.busy,
  'bucardo-control-in-use': ExitCode.migrationFailed,
} as const satisfies Record<string, ExitCode>;
export type ErrorCode = keyof typeof ERROR_CODES;

export class PgrelocateError extends Error {
  /** Stable machine-readable code, e.g. `auth-failed`. */
  readonly code: ErrorCode;
  /** What the user should do about it. */
  readonly fix: string;
  /** Extra structured detail for `--json` output. */
  readonly detail: unknown;

  constructor(code: ErrorCode, message: string, fix: string, detail?: unknown) {
    super(message);
    this.name = 'PgrelocateError';
    this.code = code;
    this.fix = fix;
    this.detail = detail;
  }

  get exitCode(): ExitCode {
    return ERROR_CODES[this.code];
  }
}

export function isPgrelocateError(e: unknown): e is PgrelocateError {
  return e instanceof PgrelocateError;
}
