import { existsSync, realpathSync } from "node:fs";
import { dirname, relative, resolve, isAbsolute, join, basename } from "node:path";
import { ApiError } from "../contract/errors.js";

/** Which git origins a daemon fetches from. */
export interface OriginPolicy {
  /** URL prefixes an origin must start with; undefined: any allowed transport. */
  allowed?: string[];
  /** Directories no file:// origin may lie in: the daemon's own workspace and RALPH_HOME. */
  forbiddenDirs: string[];
}

// Only these transports: no ext::, fd::, or other helpers that run commands.
const URL_FORM = /^(file|https|ssh):\/\/[^\s]+$/;
const SCP_FORM = /^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s-][^\s]*$/;

/** The real path of `p`, or of its nearest existing ancestor joined with the rest. */
function realish(p: string): string {
  if (existsSync(p)) return realpathSync(p);
  const parent = dirname(p);
  return parent === p ? p : join(realish(parent), basename(p));
}

const inside = (dir: string, p: string) => {
  const rel = relative(dir, p);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
};

/** The local directory a file:// origin names; refused when it has a host or percent-escapes (git and URL parsers read those differently). */
function fileOriginPath(origin: string): string {
  const rest = origin.slice("file://".length);
  if (!rest.startsWith("/")) throw new ApiError("invalid_request", `origin "${origin}" names a host: a file:// origin must be a local absolute path (file:///path)`);
  if (rest.includes("%")) throw new ApiError("invalid_request", `origin "${origin}" has percent-escapes, which git and URL parsers read differently: write the path as it is`);
  return resolve(rest);
}

/**
 * Refuses an origin that could run commands or read as an option, one
 * outside the daemon's allow-list, and a file:// origin inside the daemon's
 * own workspace or RALPH_HOME (its mirrors, state and identity).
 */
export function checkOrigin(origin: string, policy: OriginPolicy): void {
  if (origin.startsWith("-") || !(URL_FORM.test(origin) || SCP_FORM.test(origin))) {
    throw new ApiError("invalid_request", `origin "${origin}" is not an allowed git URL: use file://, https://, ssh:// or user@host:path`);
  }
  if (policy.allowed && !policy.allowed.some((prefix) => origin.startsWith(prefix))) {
    throw new ApiError("invalid_request", `origin "${origin}" is not allowed on this daemon: it fetches only from ${policy.allowed.join(", ")} (allowedOrigins in its config)`);
  }
  if (origin.startsWith("file://")) {
    const path = realish(fileOriginPath(origin));
    for (const dir of policy.forbiddenDirs) {
      if (inside(realish(resolve(dir)), path)) {
        throw new ApiError("invalid_request", `origin "${origin}" lies inside this daemon's own files (${dir}): a loop may not fetch the daemon's mirrors or state; push to a repository elsewhere`);
      }
    }
  }
}
