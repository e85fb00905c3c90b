import { closeSync, constants, fstatSync, lstatSync, openSync, readlinkSync, readSync, realpathSync, writeSync } from "node:fs";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { InvalidInputError } from "../util/errors.js";
import { repoRoot } from "./git.js";

/** The most Ralph reads of any one repository file (prd.json, prompt.md, AGENTS.md). */
export const MAX_FILE_BYTES = 1024 * 1024;

/**
 * A repository file or directory Ralph refuses to use: it leads out of the
 * repository, is not a regular file, or is too large. The message names the
 * file relative to the repository and never quotes its content.
 */
export class ContainmentError extends InvalidInputError {
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${file} ${problem}`);
    this.name = "ContainmentError";
  }
}

const LEADS_OUT = "leads outside the repository through a symbolic link: refused";
const errnoOf = (err: unknown): string | undefined => (err as NodeJS.ErrnoException).code;

function isInside(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

/** `file` (relative to root, or absolute under it) as a path relative to root, refused if its letters leave root. */
function nameIn(root: string, file: string): string {
  const [r, p] = [resolve(root), resolve(root, file)];
  if (!isInside(r, p)) throw new ContainmentError(file, "is outside the repository: give a path inside it");
  return relative(r, p);
}

/**
 * Where root/name really is, every symlink on the way resolved: one that stays
 * inside root is followed, one that leads out is refused. A missing file
 * resolves to where it would be created; a dangling symlink is refused, since
 * creating the file would create its target.
 */
function resolveIn(realRoot: string, name: string): { path: string; exists: boolean } {
  const full = join(realRoot, name);
  try {
    const path = realpathSync(full);
    if (!isInside(realRoot, path)) throw new ContainmentError(name || ".", LEADS_OUT);
    return { path, exists: true };
  } catch (err) {
    if (errnoOf(err) !== "ENOENT") throw err;
  }
  let parent: string;
  try {
    parent = realpathSync(dirname(full));
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return { path: full, exists: false };
    throw err;
  }
  if (!isInside(realRoot, parent)) throw new ContainmentError(name, LEADS_OUT);
  const path = join(parent, basename(full));
  try {
    lstatSync(path);
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return { path, exists: false };
    throw err;
  }
  throw new ContainmentError(name, "is a symbolic link to a missing file: refused");
}

/**
 * Opens a resolved path without following a symlink swapped in since, then
 * checks (through /proc where there is one) that what was opened is still
 * inside root: a directory replaced on the way is caught here.
 */
function openIn(realRoot: string, name: string, path: string, flags: number): number {
  let fd: number;
  try {
    fd = openSync(path, flags | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o666);
  } catch (err) {
    if (errnoOf(err) === "ELOOP") throw new ContainmentError(name, LEADS_OUT);
    throw err;
  }
  try {
    let opened: string | undefined;
    try {
      opened = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      opened = undefined;
    }
    if (opened !== undefined && !isInside(realRoot, opened)) throw new ContainmentError(name, LEADS_OUT);
    // A FIFO or device would block or never end.
    if (!fstatSync(fd).isFile()) throw new ContainmentError(name, "is not a regular file: refused");
    return fd;
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

const sizeText = (bytes: number): string =>
  bytes >= 1024 * 1024 ? `${(bytes / (1024 * 1024)).toFixed(1)} MiB` : bytes >= 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${bytes} bytes`;

/**
 * The directory root/dir, resolved inside root; its real path. Refused when it
 * leads out, is missing, or is not a directory.
 */
export function containedDir(root: string, dir: string): string {
  const realRoot = realpathSync(root);
  const name = nameIn(root, dir);
  const { path, exists } = resolveIn(realRoot, name);
  if (!exists) throw new ContainmentError(name || ".", "does not exist in the repository");
  if (!lstatSync(path).isDirectory()) throw new ContainmentError(name || ".", "is not a directory");
  return path;
}

/**
 * The bytes of root/file, or undefined when it does not exist. Refused, before
 * anything is read, when it leads out of root or is over maxBytes.
 */
export function readContained(root: string, file: string, maxBytes = MAX_FILE_BYTES): Buffer | undefined {
  let realRoot: string;
  try {
    realRoot = realpathSync(root);
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return undefined;
    throw err;
  }
  const name = nameIn(root, file);
  const { path, exists } = resolveIn(realRoot, name);
  if (!exists) return undefined;
  const fd = openIn(realRoot, name, path, constants.O_RDONLY);
  try {
    const tooLarge = (size: number) => new ContainmentError(name, `is ${sizeText(size)}, over the limit of ${sizeText(maxBytes)}: refused`);
    const size = fstatSync(fd).size;
    if (size > maxBytes) throw tooLarge(size);
    // Up to one byte past the limit: the file may have grown since fstat.
    const chunks: Buffer[] = [];
    let got = 0;
    for (let n; ; got += n) {
      const chunk = Buffer.alloc(Math.min(64 * 1024, maxBytes + 1 - got));
      n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      if (got + n > maxBytes) throw tooLarge(got + n);
    }
    return Buffer.concat(chunks, got);
  } finally {
    closeSync(fd);
  }
}

/** Appends text to root/file, creating it if missing; refused when it leads out of root. */
export function appendContained(root: string, file: string, text: string): void {
  const realRoot = realpathSync(root);
  const name = nameIn(root, file);
  const fd = openIn(realRoot, name, resolveIn(realRoot, name).path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

/**
 * The repository of a task dir and the task dir's path inside it. The
 * repository is found from the nearest ancestor that is not itself a symlink,
 * so a symlinked task dir cannot choose another repository; the task dir is
 * then resolved inside it like any file (refused if it leads out).
 */
export async function locateTaskDir(taskDir: string, repoDir?: string): Promise<{ root: string; rel: string }> {
  const lexical = resolve(taskDir);
  let start = lexical;
  for (;;) {
    let link = false;
    try {
      link = lstatSync(start).isSymbolicLink();
    } catch (err) {
      if (errnoOf(err) !== "ENOENT") throw err;
      link = true;
    }
    if (!link || dirname(start) === start) break;
    start = dirname(start);
  }
  const root = realpathSync(
    repoDir ??
      (await repoRoot(start).catch(() => {
        throw new InvalidInputError(`${taskDir} is not inside a git repository: run 'git init' there, or pass a task dir inside one`);
      })),
  );
  const realStart = realpathSync(start);
  if (!isInside(root, realStart)) throw new ContainmentError(taskDir, "is outside the repository");
  const rel = join(relative(root, realStart), relative(start, lexical));
  containedDir(root, rel);
  return { root, rel };
}
