import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { SupervisedProcess, pidAlive, releaseFromParentExit, signalGroup } from "../process/supervisor.js";
import { freePort } from "../util/ports.js";
import { waitFor } from "../util/wait.js";
import { opencodeBinary } from "./binary.js";

export interface OpencodeServer {
  url: string;
  port: number;
  username: string;
  password: string;
  pid: number;
  /** Resolves when the process exits. */
  exited: Promise<unknown>;
  alive(): boolean;
  /** Stops the server's whole process group: SIGTERM, then SIGKILL. */
  stop(): Promise<void>;
}

export interface StartOpencodeOptions {
  /** The repository (worktree) the agent works in. */
  cwd: string;
  /** Private state: opencode's XDG data, cache, config and state dirs live here. */
  stateDir: string;
  logFile: string;
  /** Extra environment, e.g. model API keys. Values are redacted from the log. */
  env?: Record<string, string>;
  /** opencode config merged over the repo's own (e.g. a demo model provider). */
  config?: Record<string, unknown>;
  /** The daemon keeps opencode alive across its own restart to re-adopt it. */
  keepAliveAfterParentExit?: boolean;
  readyTimeoutMs?: number;
}

export const OPENCODE_USERNAME = "opencode";

export function basicAuth(username: string, password: string): string {
  return "Basic " + Buffer.from(`${username}:${password}`).toString("base64");
}

/** True when the server answers /global/health as healthy. */
export async function opencodeHealthy(url: string, username: string, password: string): Promise<boolean> {
  const res = await fetch(`${url}/global/health`, {
    headers: { authorization: basicAuth(username, password) },
    signal: AbortSignal.timeout(2000),
  });
  if (!res.ok) return false;
  const body = (await res.json()) as { healthy?: boolean };
  return body.healthy === true;
}

/** Identity for commits the agent makes when the machine has none configured. */
const gitIdentityDefaults = {
  GIT_AUTHOR_NAME: "Ralph",
  GIT_AUTHOR_EMAIL: "ralph@localhost",
  GIT_COMMITTER_NAME: "Ralph",
  GIT_COMMITTER_EMAIL: "ralph@localhost",
};

export async function startOpencodeServer(opts: StartOpencodeOptions): Promise<OpencodeServer> {
  const bin = opencodeBinary();
  const port = await freePort();
  const password = randomBytes(24).toString("base64url");
  const xdg = (name: string) => {
    const dir = join(opts.stateDir, name);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
  };
  const env: NodeJS.ProcessEnv = {
    ...gitIdentityDefaults,
    ...process.env,
    ...opts.env,
    XDG_DATA_HOME: xdg("data"),
    XDG_CACHE_HOME: xdg("cache"),
    XDG_CONFIG_HOME: xdg("config"),
    XDG_STATE_HOME: xdg("state"),
    OPENCODE_SERVER_USERNAME: OPENCODE_USERNAME,
    OPENCODE_SERVER_PASSWORD: password,
    OPENCODE_DISABLE_MODELS_FETCH: "1",
    OPENCODE_DISABLE_AUTOUPDATE: "1",
    // A loop runs unattended: no tool may stop to ask for permission.
    OPENCODE_PERMISSION: JSON.stringify({ "*": "allow" }),
  };
  if (opts.config) env.OPENCODE_CONFIG_CONTENT = JSON.stringify(opts.config);
  const proc = await SupervisedProcess.spawn({
    name: "opencode",
    command: bin,
    args: ["serve", "--hostname", "127.0.0.1", "--port", String(port)],
    cwd: opts.cwd,
    env,
    logFile: opts.logFile,
    redact: [password, ...Object.values(opts.env ?? {})],
    // A server that must outlive us writes its log itself: a pipe to a dead
    // parent would break its writes. It prints neither its password nor its env.
    outputToFileOnly: opts.keepAliveAfterParentExit,
  });
  if (opts.keepAliveAfterParentExit) releaseFromParentExit(proc);
  const url = `http://127.0.0.1:${port}`;
  const exitedEarly = new AbortController();
  void proc.exited.then(() => exitedEarly.abort(new Error(`opencode exited before it was ready: ${proc.describeExit()}`)));
  try {
    await waitFor(() => opencodeHealthy(url, OPENCODE_USERNAME, password), {
      what: `opencode on ${url} to report healthy`,
      timeoutMs: opts.readyTimeoutMs ?? 60_000,
      intervalMs: 200,
      signal: exitedEarly.signal,
    });
  } catch (err) {
    await proc.stop(2000);
    throw err;
  }
  return {
    url,
    port,
    username: OPENCODE_USERNAME,
    password,
    pid: proc.pid,
    exited: proc.exited,
    alive: () => proc.running,
    stop: async () => {
      await proc.stop(5000);
    },
  };
}

/**
 * A server started by an earlier process (the daemon before a restart). We
 * cannot wait on a non-child, so exit is noticed by polling the pid.
 */
export function adoptOpencodeServer(info: { url: string; username: string; password: string; pid: number; port?: number }): OpencodeServer {
  const alive = () => pidAlive(info.pid);
  const exited = waitFor(() => !alive(), { what: `opencode pid ${info.pid} to exit`, timeoutMs: Number.MAX_SAFE_INTEGER, intervalMs: 500 });
  return {
    url: info.url,
    port: info.port ?? Number(new URL(info.url).port),
    username: info.username,
    password: info.password,
    pid: info.pid,
    exited,
    alive,
    stop: async () => {
      signalGroup(info.pid, "SIGTERM");
      try {
        await waitFor(() => !alive(), { what: "opencode to stop", timeoutMs: 5000, intervalMs: 100 });
      } catch {
        signalGroup(info.pid, "SIGKILL");
        await waitFor(() => !alive(), { what: `opencode (pid ${info.pid}) to die after SIGKILL`, timeoutMs: 5000, intervalMs: 100 });
      }
    },
  };
}
