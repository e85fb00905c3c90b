import { readFileSync, writeFileSync, renameSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { ralphHome } from "../config/paths.js";
import { InvalidInputError } from "../util/errors.js";

export interface Remote {
  /** Enrolled Ziti client identity (JSON) used by this machine's proxy. */
  identityFile: string;
  /** The daemon's control service, ralph-control-NAME. */
  service: string;
}

export interface RemotesFile {
  remotes: Record<string, Remote>;
}

export const remotesPath = (): string => join(ralphHome(), "client", "remotes.json");

export function readRemotes(path = remotesPath()): RemotesFile {
  let raw: string;
  try {
    raw = readFileSync(path, "utf8");
  } catch {
    return { remotes: {} };
  }
  // Checked by hand, not with zod: every client command reads this file, and zod takes ~0.1 s to load.
  const invalid = (why: string) => new InvalidInputError(`${path} is not a valid remotes file: ${why}; fix or delete it`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw invalid("it is not JSON");
  }
  const remotes = (parsed as { remotes?: unknown })?.remotes ?? {};
  if (typeof remotes !== "object" || remotes === null || Array.isArray(remotes)) throw invalid('"remotes" is not an object');
  for (const [name, r] of Object.entries(remotes)) {
    for (const field of ["identityFile", "service"] as const) {
      const value = (r as Record<string, unknown> | null)?.[field];
      if (typeof value !== "string" || value === "") throw invalid(`remotes.${name}.${field} is not a non-empty string`);
    }
  }
  return { remotes: remotes as Record<string, Remote> };
}

/** Atomic write (temp file + rename), mode 0600. */
export function writeRemotes(file: RemotesFile, path = remotesPath()): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(file, null, 2) + "\n", { mode: 0o600 });
  renameSync(tmp, path);
}

export function upsertRemote(name: string, remote: Remote, path = remotesPath()): void {
  const file = readRemotes(path);
  file.remotes[name] = remote;
  writeRemotes(file, path);
}
