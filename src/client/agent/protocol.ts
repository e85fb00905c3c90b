import { statSync } from "node:fs";
import { join } from "node:path";
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

/** Unix socket paths are limited to 107 bytes; a RALPH_HOME deeper than this leaves the agent out. */
const MAX_SOCKET_PATH = 100;

export const agentDir = (): string => join(ralphHome(), "client", "agent");
export const agentSocketPath = (): string => join(agentDir(), "agent.sock");
export const agentLogPath = (): string => join(ralphHome(), "client", "logs", "agent.log");

/** Whether commands go through the agent: not when RALPH_AGENT=off, nor when its sockets' paths would be too long. */
export const agentEnabled = (): boolean => process.env.RALPH_AGENT !== "off" && agentSocketPath().length <= MAX_SOCKET_PATH - 10;

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
