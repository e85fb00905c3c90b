import { join } from "node:path";
import { homeDir } from "../config/paths.js";
import { CliError, ExitCode, type ExitCodeValue } from "../cli/exit-codes.js";
import type { ErrorCode } from "../daemon/rpc.js";
import { startProxyTunnel, type ProxyTunnel } from "../ziti/tunnel.js";
import { readRemotes, type Remote } from "./remotes.js";

export function pickRemote(name?: string): { name: string; remote: Remote } {
  const { remotes } = readRemotes();
  const names = Object.keys(remotes);
  if (name) {
    const remote = remotes[name];
    if (!remote) throw new CliError(`no remote named "${name}" (known: ${names.join(", ") || "none"}; add one with 'ralph remote add')`, ExitCode.NotFound);
    return { name, remote };
  }
  if (names.length === 1) return { name: names[0]!, remote: remotes[names[0]!]! };
  throw new CliError(names.length ? `several remotes (${names.join(", ")}): choose one with --remote NAME` : "no remote yet: 'ralph ziti up' adds 'local', 'ralph remote add' adds others", ExitCode.InvalidInput);
}

/**
 * Opens a local proxy to a Ziti service with the remote's client identity;
 * with a terminator, to that addressable terminator of it only (a loop).
 */
export async function openProxy(remoteName: string, remote: Remote, service: string, readiness?: (url: string) => Promise<boolean>, terminator?: string): Promise<ProxyTunnel> {
  const target = terminator ? `${service} (terminator ${terminator})` : service;
  try {
    return await startProxyTunnel({
      identityFile: remote.identityFile,
      service,
      terminator,
      logFile: join(homeDir("client", "logs"), `${terminator ? `${service}-${terminator}` : service}.log`),
      readiness,
    });
  } catch (err) {
    throw new CliError(
      `cannot reach ${target} on remote "${remoteName}": ${(err as Error).message}. Is ralphd running there, and may this identity dial it?`,
      ExitCode.Unavailable,
    );
  }
}

/** What each of the daemon's error codes means to a script: a refused request is invalid input. */
const exitCodeFor: Record<ErrorCode, ExitCodeValue> = {
  invalid_request: ExitCode.InvalidInput,
  not_found: ExitCode.NotFound,
  method_not_allowed: ExitCode.InvalidInput,
  conflict: ExitCode.InvalidInput,
  busy: ExitCode.InvalidInput,
  too_large: ExitCode.InvalidInput,
  internal: ExitCode.Error,
};

const controlReady = async (url: string) => (await fetch(`${url}/health`, { signal: AbortSignal.timeout(3000) })).ok;

/** The remote daemon's control API, through the overlay. */
export class ControlClient {
  private constructor(
    readonly remoteName: string,
    private readonly proxy: ProxyTunnel,
  ) {}

  static async open(remoteName?: string): Promise<ControlClient> {
    const { name, remote } = pickRemote(remoteName);
    return new ControlClient(name, await openProxy(name, remote, remote.service, controlReady));
  }

  get url(): string {
    return this.proxy.url;
  }

  /** The proxy tunneler's pid (it restarts itself if killed). */
  proxyPid(): number {
    return this.proxy.pid();
  }

  close(): Promise<void> {
    return this.proxy.stop();
  }

  async call<T>(method: "GET" | "POST" | "DELETE", path: string, body?: unknown): Promise<T> {
    const res = await fetch(this.proxy.url + path, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = (await res.json()) as T & { error?: { code: ErrorCode; message: string } };
    if (!res.ok) {
      const code = json.error?.code;
      const exit = code && Object.hasOwn(exitCodeFor, code) ? exitCodeFor[code] : ExitCode.Error;
      throw new CliError(`${this.remoteName}: ${json.error?.message ?? res.statusText}`, exit);
    }
    return json;
  }
}

/** Runs `fn` with a control client, closing its proxy afterwards. */
export async function withControlClient<T>(remote: string | undefined, fn: (c: ControlClient) => Promise<T>): Promise<T> {
  const client = await ControlClient.open(remote);
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}
