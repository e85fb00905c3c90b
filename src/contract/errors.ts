/**
 * Every error the control API answers with, and its HTTP status: the one
 * table the daemon, the client and the CLI's exit codes follow.
 */
export const ERROR_STATUS = {
  invalid_request: 400,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  too_large: 413,
  internal: 500,
  busy: 503,
  /** The daemon's host lacks what the request needs (e.g. no sandbox can be made there). */
  unavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;
export const ERROR_CODES = Object.keys(ERROR_STATUS) as [ErrorCode, ...ErrorCode[]];
export const isErrorCode = (code: unknown): code is ErrorCode => typeof code === "string" && Object.hasOwn(ERROR_STATUS, code);

// No zod here: the client reads errors on every command, and zod takes ~0.1 s to load.

/** An error of the control API: thrown by the daemon's domain layer, and rebuilt by the client from the answer. */
export class ApiError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }

  get status(): (typeof ERROR_STATUS)[ErrorCode] {
    return ERROR_STATUS[this.code];
  }
}
