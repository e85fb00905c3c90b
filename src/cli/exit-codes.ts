import { ApiError, type ErrorCode } from "../contract/errors.js";
import { InvalidInputError, NotFoundError, UnavailableError } from "../util/errors.js";

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

const byApiError: Record<ErrorCode, ExitCodeValue> = {
  invalid_request: ExitCode.InvalidInput,
  not_found: ExitCode.NotFound,
  method_not_allowed: ExitCode.InvalidInput,
  conflict: ExitCode.InvalidInput,
  too_large: ExitCode.InvalidInput,
  busy: ExitCode.InvalidInput,
  internal: ExitCode.Error,
  unavailable: ExitCode.Unavailable,
};

/** The exit code for an error: the one place kinds of failure become codes. */
export function exitCodeFor(err: unknown): ExitCodeValue {
  if (err instanceof ApiError) return byApiError[err.code];
  if (err instanceof InvalidInputError) return ExitCode.InvalidInput;
  if (err instanceof NotFoundError) return ExitCode.NotFound;
  if (err instanceof UnavailableError) return ExitCode.Unavailable;
  return ExitCode.Error;
}
