import { UnavailableError } from "../util/errors.js";
import { ExitCode, CliError } from "./exit-codes.js";

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

/** Writes one error line to stderr and returns the exit code it maps to. */
export function reportError(err: unknown): number {
  const useErrColor = useColor(process.stderr);
  const prefix = useErrColor ? "\u001b[31merror:\u001b[39m" : "error:";
  if (err instanceof CliError || err instanceof UnavailableError) {
    process.stderr.write(`${prefix} ${err.message}\n`);
    return err instanceof CliError ? err.exitCode : ExitCode.Unavailable;
  }
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`${prefix} ${message}\n`);
  if (process.env.RALPH_DEBUG && err instanceof Error && err.stack) process.stderr.write(err.stack + "\n");
  return ExitCode.Error;
}
