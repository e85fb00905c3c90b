import { createHash } from "node:crypto";
import { lstatSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UnavailableError } from "../../util/errors.js";
import { ralphHome } from "../../config/paths.js";
import { PACKAGE_ROOT, VERSION } from "../../version.js";

/**
 * The client agent's protocol: one JSON object a line each way on a Unix
 * socket only its user may open, every answer carrying its request's id.
 */
export type AgentRequest =
  /** A warm dialer to the service with the identity: its socket, once a request through it has been answered. */
  | { id: number; op: "open"; identityFile: string; service: string; label: string }
  /** A request through that dialer failed: the dialer's latest error, and the dialer is dropped so the next open starts afresh. */
  | { id: number; op: "failed"; identityFile: string; service: string }
  /** Which build of ralph the agent runs: a command of another build replaces it. */
  | { id: number; op: "hello" }
  | { id: number; op: "status" }
  | { id: number; op: "stop" };

export interface DialerStatus {
  label: string;
  service: string;
  socket: string;
  pid: number;
  idleSeconds: number;
}

export type AgentAnswer =
  | { id: number; ok: true; socket?: string; lastError?: string; build?: string; status?: { pid: number; idleExitSeconds: number; dialers: DialerStatus[] } }
  | { id: number; ok: false; kind: "unavailable" | "invalid"; message: string };

/** Unix socket paths are limited to 107 bytes: the longest the agent makes is a dialer's. */
const LONGEST_SOCKET = "dial-4194304-9999.sock";
const MAX_SOCKET_PATH = 107;

/**
 * Where the agent's sockets are: RALPH_HOME/client/agent, or, when
 * RALPH_HOME is too deep for socket paths, a short directory of this user's
 * own, one per RALPH_HOME (under $XDG_RUNTIME_DIR, else /tmp), made 0700 and
 * checked to be this user's, not a link, before any use.
 */
export function agentDir(): string {
  const natural = join(ralphHome(), "client", "agent");
  if (Buffer.byteLength(join(natural, LONGEST_SOCKET)) <= MAX_SOCKET_PATH) return natural;
  const uid = process.getuid?.() ?? 0;
  const runtime = process.env.XDG_RUNTIME_DIR;
  const base = runtime && runtime.startsWith("/") ? join(runtime, "ralph-remote") : join(tmpdir(), `ralph-remote-${uid}`);
  ownPrivateDir(base, uid);
  return join(base, createHash("sha256").update(ralphHome()).digest("hex").slice(0, 12));
}

/** Makes `dir` (0700) or checks the one there: a directory, not a link, this user's, no one else's to enter. */
function ownPrivateDir(dir: string, uid: number): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const s = lstatSync(dir);
  if (!s.isDirectory() || s.uid !== uid || (s.mode & 0o077) !== 0) {
    throw new UnavailableError(`${dir}, where the client agent's sockets go when RALPH_HOME is too long for them, is not a private directory of this user's: remove it, or use a shorter RALPH_HOME`);
  }
}

export const agentSocketPath = (): string => join(agentDir(), "agent.sock");
export const agentLogPath = (): string => join(ralphHome(), "client", "logs", "agent.log");

/** Whether commands go through the agent: not when RALPH_AGENT=off. */
export const agentEnabled = (): boolean => process.env.RALPH_AGENT !== "off";

const DIALER_SOCKET = /^dial-(\d+)-\d+\.sock$/;

/** Removes the sockets of dialers whose agent is gone (killed outright: nothing removed them). */
export function removeStaleSockets(alive: (pid: number) => boolean): number {
  let removed = 0;
  let names: string[];
  try {
    names = readdirSync(agentDir());
  } catch {
    return 0;
  }
  for (const name of names) {
    const pid = Number(DIALER_SOCKET.exec(name)?.[1]);
    if (pid && !alive(pid)) {
      rmSync(join(agentDir(), name), { force: true });
      removed++;
    }
  }
  return removed;
}

/** How long the agent lives after the last command, in seconds (RALPH_AGENT_IDLE_SECONDS; default 10 minutes). */
export function idleExitSeconds(): number {
  const n = Number(process.env.RALPH_AGENT_IDLE_SECONDS);
  return Number.isFinite(n) && n > 0 ? n : 600;
}

/** This installation's build: its version and when its agent code was built. */
export function agentBuild(): string {
  const built = statSync(join(PACKAGE_ROOT, "dist", "client", "agent", "server.js"), { throwIfNoEntry: false })?.mtimeMs ?? 0;
  return `${VERSION}+${built}`;
}

/** One dialer per identity (as it is now on disk) and service: a re-enrolled identity gets a new one. */
export function dialerKey(identityFile: string, service: string): string {
  let version = "missing";
  try {
    const st = statSync(identityFile);
    version = `${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch {
    /* the dialer's start reports it */
  }
  return `${identityFile}\0${version}\0${service}`;
}
