import { ExitCode, exitCodeFor } from "./exit-codes.js";

/** Colour only when writing to a terminal and NO_COLOR is unset. */
export function useColor(stream: NodeJS.WriteStream = process.stdout): boolean {
  return Boolean(stream.isTTY) && !process.env.NO_COLOR;
}

/**
 * Every character that could drive a terminal instead of showing on it: C0
 * controls but newline and tab (ESC starts ANSI and OSC sequences), DEL, C1
 * controls (0x9b is a one-byte CSI), and the bidirectional overrides that
 * make text read other than it is.
 */
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/** Text from a repository, the agent, a model, a daemon or another machine, made inert: each control character shown escaped, as `\x1b`. */
export const neutralize = (text: string): string =>
  text.replace(CONTROL, (c) => {
    const n = c.charCodeAt(0);
    return n < 0x100 ? `\\x${n.toString(16).padStart(2, "0")}` : `\\u${n.toString(16).padStart(4, "0")}`;
  });

/**
 * The project's own colours travel to the output layer as marks no text from
 * outside can forge (a private-use character and a secret of this process),
 * and become escape sequences only after everything else was neutralized.
 */
const MARK = `\u{e000}${Math.random().toString(36).slice(2, 10)}`;
const MARKS = new RegExp(`${MARK}(\\d+)m`, "g");
const render = (text: string, color: boolean): string => neutralize(text).replace(MARKS, (_, sgr: string) => (color ? `\u001b[${sgr}m` : ""));

const code = (open: number, close: number) => (s: string) => `${MARK}${open}m${s}${MARK}${close}m`;

export const style = {
  bold: code(1, 22),
  dim: code(2, 22),
  red: code(31, 39),
  green: code(32, 39),
  yellow: code(33, 39),
  cyan: code(36, 39),
};

let rawStdout = (text: string): boolean => process.stdout.write(text);

/**
 * The one way text reaches the terminal: every write to stdout and stderr
 * is neutralized (see neutralize), whatever command made it and whatever it
 * quotes, and the project's own colours are drawn where colour is on. Only
 * --json output (printJson) is written as it is: JSON escapes what matters.
 */
export function installSafeOutput(): void {
  for (const stream of [process.stdout, process.stderr]) {
    const raw = stream.write.bind(stream) as (chunk: string, ...rest: unknown[]) => boolean;
    if (stream === process.stdout) rawStdout = (text) => raw(text);
    stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]) =>
      raw(render(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8"), useColor(stream)), ...rest)) as typeof stream.write;
  }
}

export function printJson(value: unknown): void {
  rawStdout(JSON.stringify(value) + "\n");
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
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`${style.red("error:")} ${message}\n`);
  const code = exitCodeFor(err);
  // An unexpected error may be a bug: its stack helps, on request.
  if (code === ExitCode.Error && process.env.RALPH_DEBUG && err instanceof Error && err.stack) process.stderr.write(err.stack + "\n");
  return code;
}
