/**
 * Exit codes shared by `ralph` and `ralphd`. Scripts may rely on them, so
 * they never change meaning.
 */
export const ExitCode = {
  /** Success; for a loop: every story passes. */
  Ok: 0,
  /** An unexpected error (a bug, or an environment problem not covered below). */
  Error: 1,
  /** Invalid input: bad arguments, a malformed PRD, a request the daemon refused. */
  InvalidInput: 2,
  /** The loop spent its iteration budget with stories still failing. */
  Exhausted: 3,
  /** The loop gave up after consecutive failed iterations. */
  Failed: 4,
  /** An unknown loop, remote or identity. */
  NotFound: 5,
  /** A needed service or binary is unavailable: daemon, controller, ziti, opencode, git. */
  Unavailable: 6,
  /** The loop reached its cost or token budget (--max-cost, --max-tokens) with stories still failing. */
  Budget: 7,
  /** Stopped by a signal or by `ralph stop`. */
  Stopped: 130,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** An error the CLI reports as one clear line and a specific exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCodeValue = ExitCode.Error,
  ) {
    super(message);
    this.name = "CliError";
  }
}
