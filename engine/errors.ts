/**
 * Errors that say what went wrong and what to do about it, with exit codes
 * that scripts can rely on (see README "Exit codes").
 */

/** Exit codes of the `pgferry` CLI. */
export const ExitCode = {
  ok: 0,
  /** An unexpected failure (a bug, or a server error pgferry did not classify). */
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
  /** Another pgferry is working on the same target; nothing was changed. */
  busy: 7,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

const EXIT_BY_CODE: Record<string, ExitCode> = {
  'bad-url': ExitCode.usage,
  usage: ExitCode.usage,
  'auth-failed': ExitCode.connection,
  'no-database': ExitCode.connection,
  unreachable: ExitCode.connection,
  'connect-failed': ExitCode.connection,
  'check-failed': ExitCode.checkFailed,
  'verify-failed': ExitCode.verifyFailed,
  'run-busy': ExitCode.busy,
};

export class PgferryError extends Error {
  /** Stable machine-readable code, e.g. `auth-failed`. */
  readonly code: string;
  /** What the user should do about it. */
  readonly fix: string;
  /** Extra structured detail for `--json` output. */
  readonly detail: unknown;

  constructor(code: string, message: string, fix: string, detail?: unknown) {
    super(message);
    this.name = 'PgferryError';
    this.code = code;
    this.fix = fix;
    this.detail = detail;
  }

  get exitCode(): ExitCode {
    return EXIT_BY_CODE[this.code] ?? ExitCode.migrationFailed;
  }
}

export function isPgferryError(e: unknown): e is PgferryError {
  return e instanceof PgferryError;
}
