import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { mkdirSync } from "node:fs";

/**
 * Every file Ralph Remote writes lives under one directory so that tests and
 * users can isolate runs by setting RALPH_HOME.
 */
export function ralphHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.RALPH_HOME) return resolve(env.RALPH_HOME);
  const stateBase = env.XDG_STATE_HOME || join(homedir(), ".local", "state");
  return join(stateBase, "ralph-remote");
}

/** Creates (0700) and returns a subdirectory of RALPH_HOME. */
export function homeDir(...parts: string[]): string {
  const dir = join(ralphHome(), ...parts);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** Cache for built artifacts (the ziti binary), shared across RALPH_HOMEs. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.RALPH_CACHE_DIR) return resolve(env.RALPH_CACHE_DIR);
  const base = env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "ralph-remote");
}
