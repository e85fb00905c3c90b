import { ExitCode, exitCodeFor } from "./exit-codes.js";

/** Colour only when writing to a terminal and NO_COLOR is unset. */
export function useColor(stream: NodeJS.WriteStream = process.stdout): boolean {
  return Boolean(stream.isTTY) && !process.env.NO_COLOR;
}

const code = (open: number, close: number) => (s: string) =>
  useColor() ? `\u001b[${open}m${s}\u001b[${close}m` : s;

export const style = {
  bold: code(1, 22),
  dim: code(2, 22),
  red: code(31, 39),
  green: code(32, 39),
  yellow: code(33, 39),
  cyan: code(36, 39),
};

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + "\n");
}

/**
 * Output to a closed pipe (`ralph ls | head -1`) ends the command quietly
 * with status 0, as Unix tools do, through process.exit: its hook stops every
 * child the command started (the dialer), as on Ctrl-C. A closed stderr is
 * ignored: there is no one left to tell, and the command carries on.
 */
export function endQuietlyOnClosedPipe(): void {
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE") throw err;
    process.exit(ExitCode.Ok);
  });
  process.stderr.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE") throw err;
  });
}

/** Writes one error line to stderr and returns the exit code it maps to. */
export function reportError(err: unknown): number {
  const useErrColor = useColor(process.stderr);
  const prefix = useErrColor ? "\u001b[31merror:\u001b[39m" : "error:";
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`${prefix} ${message}\n`);
  const code = exitCodeFor(err);
  // An unexpected error may be a bug: its stack helps, on request.
  if (code === ExitCode.Error && process.env.RALPH_DEBUG && err instanceof Error && err.stack) process.stderr.write(err.stack + "\n");
  return code;
}
