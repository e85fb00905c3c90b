import { readFileSync, writeFileSync, renameSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { z } from "zod";
import { ralphHome } from "../config/paths.js";

export const RemoteSchema = z.object({
  /** Enrolled Ziti client identity (JSON) used by this machine's proxy. */
  identityFile: z.string().min(1),
  /** The daemon's control service, ralph-control-NAME. */
  service: z.string().min(1),
});

export const RemotesFileSchema = z.object({
  remotes: z.record(z.string(), RemoteSchema).default({}),
});

export type Remote = z.infer<typeof RemoteSchema>;
export type RemotesFile = z.infer<typeof RemotesFileSchema>;

export const remotesPath = (): string => join(ralphHome(), "client", "remotes.json");

export function readRemotes(path = remotesPath()): RemotesFile {
  let raw: string;
  try {
    raw = readFileSync(path, "utf8");
  } catch {
    return { remotes: {} };
  }
  const parsed = RemotesFileSchema.safeParse(JSON.parse(raw));
  if (!parsed.success) throw new Error(`${path} is not a valid remotes file: ${parsed.error.issues[0]?.message}; fix or delete it`);
  return parsed.data;
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
