/**
 * The kinds of failure the CLI tells apart. Each maps to one exit code, in
 * one place (src/cli/exit-codes.ts); modules throw the kind, never a code.
 */

/** What was asked is unusable as it stands: bad arguments, a malformed PRD, a refused token. */
export class InvalidInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvalidInputError";
  }
}

/** An unknown loop, remote, identity or file that was named. */
export class NotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NotFoundError";
  }
}

/**
 * Something this program needs is missing or unreachable: a binary, the
 * controller, a daemon.
 */
export class UnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnavailableError";
  }
}

/** The same kind of failure with another message (plain errors become `fallback`). */
export function rephrased(err: unknown, message: string, fallback: new (message: string) => Error = Error): Error {
  for (const Kind of [InvalidInputError, NotFoundError, UnavailableError]) if (err instanceof Kind) return new Kind(message);
  return new fallback(message);
}
