import { join } from "node:path";
import { homeDir } from "../config/paths.js";
import { InvalidInputError, NotFoundError, UnavailableError } from "../util/errors.js";
import { socketFetch } from "../util/socket-fetch.js";
import type { ProxyTunnel } from "../ziti/tunnel.js";
import { AgentConnection } from "./agent/client.js";
import { agentEnabled } from "./agent/protocol.js";
import { controlAnswers, controlApi, type ControlApi } from "./api.js";
import { readRemotes, type Remote } from "./remotes.js";

export function pickRemote(name?: string): { name: string; remote: Remote } {
  const { remotes } = readRemotes();
  const names = Object.keys(remotes);
  if (name) {
    const remote = remotes[name];
    if (!remote) throw new NotFoundError(`no remote named "${name}" (known: ${names.join(", ") || "none"}; add one with 'ralph remote add')`);
    return { name, remote };
  }
  if (names.length === 1) return { name: names[0]!, remote: remotes[names[0]!]! };
  throw new InvalidInputError(names.length ? `several remotes (${names.join(", ")}): choose one with --remote NAME` : "no remote yet: 'ralph ziti up' adds 'local', 'ralph remote add' adds others");
}

const unreachable = (remoteName: string, target: string, reason: string) =>
  new UnavailableError(`cannot reach ${target} on remote "${remoteName}": ${reason}. Is ralphd running there, and may this identity dial it?`);

/**
 * Opens a local proxy of this command's own to a Ziti service with the
 * remote's client identity; with a terminator, to that addressable
 * terminator of it only (a loop). It listens on 127.0.0.1: what `opencode
 * attach` needs.
 */
export async function openProxy(remoteName: string, remote: Remote, service: string, readiness?: (url: string) => Promise<boolean>, terminator?: string): Promise<ProxyTunnel> {
  const target = terminator ? `${service} (terminator ${terminator})` : service;
  const { startProxyTunnel } = await import("../ziti/tunnel.js");
  try {
    return await startProxyTunnel({
      identityFile: remote.identityFile,
      service,
      terminator,
      logFile: join(homeDir("client", "logs"), `${terminator ? `${service}-${terminator}` : service}.log`),
      readiness,
    });
  } catch (err) {
    throw unreachable(remoteName, target, (err as Error).message);
  }
}

/** How a client reaches one daemon's control service. */
interface Transport {
  /** Where requests go, for a user. */
  route: string;
  /** The URL requests name: the proxy's, or any for a socket. */
  baseUrl: string;
  fetch: typeof fetch;
  /** Why requests fail, as the dialer saw it; the transport may drop its dialer. */
  diagnose(): Promise<string | undefined>;
  /** Gets a working path again after a failure (the agent starts a new dialer). */
  reconnect(): Promise<void>;
  close(): Promise<void>;
}

/** A request for one base URL sent to another (the same path and query). */
function rebase(input: string | URL | Request, base: string): string | Request {
  const url = new URL(input instanceof Request ? input.url : String(input));
  const to = new URL(url.pathname + url.search, base).toString();
  return input instanceof Request ? new Request(to, input) : to;
}

/**
 * Through the client agent's warm dialer for the remote. When the agent goes
 * away (stopped, killed, replaced by a newer build), a fresh one is started;
 * if none can be, the command carries on with a dialer of its own.
 */
async function agentTransport(name: string, remote: Remote): Promise<Transport> {
  let agent = (await AgentConnection.connect({ start: true }))!;
  let own: Transport | undefined;
  const open = async () => {
    const a = await agent.ask({ op: "open", identityFile: remote.identityFile, service: remote.service, label: name });
    if (!a.ok) throw unreachable(name, remote.service, a.message);
    return socketFetch(a.socket!);
  };
  let via: typeof fetch;
  try {
    via = await open();
  } catch (err) {
    agent.close();
    throw err;
  }
  return {
    route: "by the client agent's warm dialer",
    baseUrl: "http://ralph-control",
    fetch: (input, init) => (own ? own.fetch(rebase(input, own.baseUrl), init) : via(input, init)),
    diagnose: async () => {
      if (own) return own.diagnose();
      const a = await agent.ask({ op: "failed", identityFile: remote.identityFile, service: remote.service });
      return a.ok ? a.lastError : undefined;
    },
    reconnect: async () => {
      if (own) return own.reconnect();
      if (!agent.alive) {
        try {
          agent = (await AgentConnection.connect({ start: true }))!;
        } catch {
          // Its own dialer listens on 127.0.0.1, so requests name its URL instead.
          own = await directTransport(name, remote);
          return;
        }
      }
      via = await open();
    },
    close: async () => {
      agent.close();
      await own?.close();
    },
  };
}

/** A dialer of this command's own (RALPH_AGENT=off, or a RALPH_HOME too deep for sockets). */
async function directTransport(name: string, remote: Remote): Promise<Transport> {
  const proxy = await openProxy(name, remote, remote.service, controlAnswers);
  return {
    route: `by this command's own dialer at ${proxy.url}`,
    baseUrl: proxy.url,
    fetch: proxy.fetch,
    diagnose: async () => proxy.lastError(),
    // The dialer restarts itself when it dies.
    reconnect: async () => undefined,
    close: () => proxy.stop(),
  };
}

/** The remote daemon's control API, through the overlay. */
export class ControlClient {
  /** Typed from the daemon's routes. */
  readonly api: ControlApi;

  private constructor(
    readonly remoteName: string,
    readonly remote: Remote,
    private readonly transport: Transport,
  ) {
    this.api = controlApi(transport.baseUrl, this.fetch);
  }

  static async open(remoteName?: string): Promise<ControlClient> {
    const { name, remote } = pickRemote(remoteName);
    return ControlClient.to(name, remote);
  }

  static async to(name: string, remote: Remote): Promise<ControlClient> {
    return new ControlClient(name, remote, agentEnabled() ? await agentTransport(name, remote) : await directTransport(name, remote));
  }

  /**
   * Requests through the overlay. When one cannot reach the daemon, a fresh
   * dialer is started: its login and first request name the real cause (a
   * revoked identity, no daemon hosting the service), which a warm dialer's
   * failed dial may not. A GET is then tried once more.
   */
  readonly fetch: typeof fetch = async (input, init) => {
    try {
      return await this.transport.fetch(input, init);
    } catch (err) {
      if (init?.signal?.aborted) throw err;
      const reason = (await this.transport.diagnose().catch(() => undefined)) ?? (err as Error).message;
      await this.transport.reconnect();
      if ((init?.method ?? "GET") !== "GET") throw unreachable(this.remoteName, this.remote.service, reason);
      try {
        return await this.transport.fetch(input, init);
      } catch (again) {
        throw unreachable(this.remoteName, this.remote.service, (again as Error).message);
      }
    }
  };

  /** What the URLs of requests through `fetch` start with. */
  get baseUrl(): string {
    return this.transport.baseUrl;
  }

  /** How requests reach the daemon, for a user. */
  get route(): string {
    return this.transport.route;
  }

  reconnect(): Promise<void> {
    return this.transport.reconnect();
  }

  close(): Promise<void> {
    return this.transport.close();
  }
}

/** Runs `fn` with the client being opened, closing it afterwards. */
export async function withClient<T>(opening: Promise<ControlClient>, fn: (c: ControlClient) => Promise<T>): Promise<T> {
  const client = await opening;
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

/** Runs `fn` with a control client of the remote named (or the only one), closing it afterwards. */
export const withControlClient = <T>(remote: string | undefined, fn: (c: ControlClient) => Promise<T>): Promise<T> => withClient(ControlClient.open(remote), fn);
