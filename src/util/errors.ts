/**
 * Something this program needs is missing or unreachable: a binary, the
 * controller, a daemon. The CLI exits with the "unavailable" code for it.
 */
export class UnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnavailableError";
  }
}
