import { ExitCode } from "./exit-codes.js";

/**
 * Ctrl-C or SIGTERM on a command with no handler of its own exits with the
 * "stopped" code through process.exit, so the exit hook stops every child
 * (tunnelers run in their own process groups and never see the terminal's
 * signal). Commands that stop gracefully add their own handler, and this one
 * then stands aside.
 */
export function exitOnSignalUnlessHandled(): void {
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.on(sig, () => {
      if (process.listenerCount(sig) === 1) process.exit(ExitCode.Stopped);
    });
  }
}
