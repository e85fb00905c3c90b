import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SupervisedProcess, pidAlive, releaseFromParentExit, signalGroup } from "../process/supervisor.js";
import { openSandbox, SANDBOX_OPENCODE_PORT, type OpenSandbox, type SandboxInfo, type SandboxPlan } from "../sandbox/sandbox.js";
import type { LimitHits } from "../sandbox/limits.js";
import { freePort } from "../util/ports.js";
import { socketFetch } from "../util/socket-fetch.js";
import { waitFor } from "../util/wait.js";
import { opencodeBinary } from "./binary.js";

export interface OpencodeServer {
  /** The Unix socket it answers on (only its owner may open it): never a TCP port. */
  socket: string;
  /** fetch over that socket; URLs are http://opencode/... */
  fetch: typeof fetch;
  username: string;
  password: string;
  /** The sandbox's launcher (unsandboxed: the init's), whose process group is the server's. */
  pid: number;
  sandbox: SandboxInfo;
  /** Resolves when the process exits. */
  exited: Promise<unknown>;
  alive(): boolean;
  /** Times the sandbox hit its memory and process limits so far. */
  limitHits(): LimitHits;
  /** Stops the sandbox (everything in it) and its egress proxy. */
  stop(): Promise<void>;
}

export interface StartOpencodeOptions {
  /** Where and how it runs: the worktree, the loop's private directory, the sandbox or the opt-out. */
  sandbox: SandboxPlan;
  logFile: string;
  /** Model API keys and the like: the whole environment it gets beside its own settings. Never logged. */
  env?: Record<string, string>;
  /** opencode config merged over the repo's own (e.g. a demo model provider). */
  config?: Record<string, unknown>;
  /** The daemon keeps opencode alive across its own restart to re-adopt it. */
  keepAliveAfterParentExit?: boolean;
  readyTimeoutMs?: number;
}

export const OPENCODE_USERNAME = "opencode";
/** The host part of URLs sent over an opencode server's socket. */
export const OPENCODE_BASE_URL = "http://opencode";

export function basicAuth(username: string, password: string): string {
  return "Basic " + Buffer.from(`${username}:${password}`).toString("base64");
}

/** True when the server answers /global/health as healthy. */
async function healthy(fetcher: typeof fetch, password: string): Promise<boolean> {
  const res = await fetcher(`${OPENCODE_BASE_URL}/global/health`, {
    headers: { authorization: basicAuth(OPENCODE_USERNAME, password) },
    signal: AbortSignal.timeout(2000),
  });
  if (!res.ok) return false;
  const body = (await res.json()) as { healthy?: boolean };
  return body.healthy === true;
}

/** Identity for commits the agent makes. */
const gitIdentity = {
  GIT_AUTHOR_NAME: "Ralph",
  GIT_AUTHOR_EMAIL: "ralph@localhost",
  GIT_COMMITTER_NAME: "Ralph",
  GIT_COMMITTER_EMAIL: "ralph@localhost",
};

function serverOf(box: OpenSandbox, password: string, pid: number, exited: Promise<unknown>, alive: () => boolean, stopProcess: () => Promise<void>): OpencodeServer {
  // However it ends, its egress proxy and cgroups go with it.
  void exited.then(() => box.close());
  return {
    socket: box.socket,
    fetch: socketFetch(box.socket),
    username: OPENCODE_USERNAME,
    password,
    pid,
    sandbox: box.info,
    exited,
    alive,
    limitHits: () => box.hits(),
    stop: async () => {
      await stopProcess();
      await box.close();
    },
  };
}

export async function startOpencodeServer(opts: StartOpencodeOptions): Promise<OpencodeServer> {
  const bin = opencodeBinary();
  const home = join(opts.sandbox.dir, "home");
  // opencode's global config dir, read-only inside: no agent rewrites the config of the next
  // iteration's session, and opencode skips the ~64 MB plugin install it would try there.
  const configDir = join(home, ".config", "opencode");
  mkdirSync(configDir, { recursive: true, mode: 0o755 });
  // What opencode writes there on its first start; it cannot once the dir is read-only.
  writeFileSync(join(configDir, "opencode.jsonc"), `{\n  "$schema": "https://opencode.ai/config.json"\n}`);
  writeFileSync(join(configDir, ".gitignore"), ["node_modules", "package.json", "package-lock.json", "bun.lock", ".gitignore"].join("\n") + "\n");
  const box = await openSandbox({ ...opts.sandbox, ro: [...opts.sandbox.ro, bin, configDir] });
  const password = randomBytes(24).toString("base64url");
  const env: Record<string, string> = {
    ...gitIdentity,
    ...opts.env,
    XDG_DATA_HOME: join(home, ".local", "share"),
    XDG_CACHE_HOME: join(home, ".cache"),
    XDG_CONFIG_HOME: join(home, ".config"),
    XDG_STATE_HOME: join(home, ".local", "state"),
    OPENCODE_SERVER_USERNAME: OPENCODE_USERNAME,
    OPENCODE_SERVER_PASSWORD: password,
    OPENCODE_DISABLE_MODELS_FETCH: "1",
    OPENCODE_DISABLE_AUTOUPDATE: "1",
    // A loop runs unattended: no tool may stop to ask for permission.
    OPENCODE_PERMISSION: JSON.stringify({ "*": "allow" }),
  };
  if (opts.config) env.OPENCODE_CONFIG_CONTENT = JSON.stringify(opts.config);
  // In its own network namespace any port will do; unsandboxed it shares the host's loopback.
  const port = box.info.mode === "on" ? SANDBOX_OPENCODE_PORT : await freePort();
  const launch = box.command([bin, "serve", "--hostname", "127.0.0.1", "--port", String(port)], port, env, opts.keepAliveAfterParentExit);
  let proc: SupervisedProcess;
  try {
    proc = await SupervisedProcess.spawn({
      name: "opencode",
      command: launch.command,
      args: launch.args,
      cwd: opts.sandbox.worktree,
      env: launch.env,
      logFile: opts.logFile,
      // Values too short to be secrets would only garble the log.
      redact: [password, ...Object.values(opts.env ?? {}).filter((v) => v.length >= 8)],
      // A server that must outlive us writes its log itself: a pipe to a dead
      // parent would break its writes. It prints neither its password nor its env.
      outputToFileOnly: opts.keepAliveAfterParentExit,
    });
  } catch (err) {
    await box.close();
    throw err;
  }
  if (opts.keepAliveAfterParentExit) releaseFromParentExit(proc);
  const server = serverOf(box, password, proc.pid, proc.exited, () => proc.running, async () => void (await proc.stop(5000)));
  const exitedEarly = new AbortController();
  void proc.exited.then(() => exitedEarly.abort(new Error(`opencode exited before it was ready: ${proc.describeExit()}`)));
  try {
    await waitFor(() => healthy(server.fetch, password), {
      what: `opencode on ${box.socket} to report healthy`,
      timeoutMs: opts.readyTimeoutMs ?? 60_000,
      intervalMs: 100,
      signal: exitedEarly.signal,
    });
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

/**
 * A server started by an earlier process (the daemon before a restart). Its
 * sandbox's egress proxy died with that process and starts again here. We
 * cannot wait on a non-child, so exit is noticed by polling the pid.
 */
export async function adoptOpencodeServer(info: { sandbox: SandboxPlan; password: string; pid: number }): Promise<OpencodeServer> {
  const box = await openSandbox(info.sandbox, { adopt: true });
  const alive = () => pidAlive(info.pid);
  const exited = waitFor(() => !alive(), { what: `opencode pid ${info.pid} to exit`, timeoutMs: Number.MAX_SAFE_INTEGER, intervalMs: 500 });
  return serverOf(box, info.password, info.pid, exited, alive, async () => {
    signalGroup(info.pid, "SIGTERM");
    try {
      await waitFor(() => !alive(), { what: "opencode to stop", timeoutMs: 5000, intervalMs: 100 });
    } catch {
      signalGroup(info.pid, "SIGKILL");
      await waitFor(() => !alive(), { what: `opencode (pid ${info.pid}) to die after SIGKILL`, timeoutMs: 5000, intervalMs: 100 });
    }
  });
}
