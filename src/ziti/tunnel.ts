import { SupervisedProcess, type SpawnOptions } from "../process/supervisor.js";
import { socketFetch } from "../util/socket-fetch.js";
import { sleep, waitFor } from "../util/wait.js";
import { ensureDialerBinary } from "./binary.js";

export interface Tunnel {
  pid(): number;
  /** How many times the tunneler died and was restarted. */
  restarts(): number;
  stop(): Promise<void>;
}

export interface ProxyTunnel extends Tunnel {
  /** http://127.0.0.1:PORT, or an http URL whose host is ignored for a socket. */
  url: string;
  /** What reaches the service through the proxy: global fetch on TCP, over the socket otherwise. */
  fetch: typeof fetch;
  /** The dialer's latest dial error or fatal error, for telling a user why a request failed. */
  lastError(): string | undefined;
}

/**
 * Keeps one tunneler process running: restarts it with backoff when it dies,
 * until stopped. `spawnOptions` is asked anew for every start.
 */
async function supervise(spawnOptions: () => SpawnOptions, onRestart?: () => Promise<void>): Promise<Tunnel> {
  let stopped = false;
  let restarts = 0;
  const spawn = () => SupervisedProcess.spawn(spawnOptions());
  let proc = await spawn();
  const watch = async () => {
    while (!stopped) {
      await proc.exited;
      if (stopped) return;
      restarts++;
      await sleep(Math.min(10_000, 250 * 2 ** Math.min(restarts, 6)));
      if (stopped) return;
      try {
        proc = await spawn();
        // Stopped while it was starting: this one must not outlive the stop.
        if (stopped) return void (await proc.stop(3000));
        await onRestart?.();
      } catch {
        /* tried again on the next pass */
      }
    }
  };
  void watch();
  return {
    pid: () => proc.pid,
    restarts: () => restarts,
    stop: async () => {
      stopped = true;
      await proc.stop(3000);
    },
  };
}

/** Any HTTP answer through the proxy proves the overlay path works end to end. */
export async function httpAnswers(url: string, fetchVia: typeof fetch = fetch): Promise<boolean> {
  const res = await fetchVia(url, { signal: AbortSignal.timeout(3000) });
  await res.body?.cancel();
  return res.status > 0;
}

interface DialerEvent {
  event: "listening" | "service" | "dial-error" | "fatal";
  address?: string;
  available?: boolean;
  message?: string;
}

/**
 * A listener on 127.0.0.1, or on a Unix socket only this user may open, that
 * dials one service over the overlay with a client identity
 * (tools/ziti/dialer; `ziti tunnel proxy` would listen on every interface).
 * It keeps its port or socket across restarts. Readiness is a real
 * request through it; a refused identity, or a service this identity cannot
 * see for 5 s, fails at once with the reason.
 */
export async function startProxyTunnel(opts: {
  identityFile: string;
  service: string;
  logFile: string;
  /** Listen on this Unix socket (created 0600) instead of a loopback port. */
  socketPath?: string;
  readiness?: (url: string, fetchVia: typeof fetch) => Promise<boolean>;
  readyTimeoutMs?: number;
  /**
   * Wait for a service that is still being registered, or not hosted yet,
   * instead of failing: after 5 s without the service, or at once when a
   * dial finds nothing hosting it (or not the terminator asked for).
   */
  awaitService?: boolean;
  /**
   * Dial only this addressable terminator of the service (a loop's id on the
   * daemon's loops service).
   */
  terminator?: string;
}): Promise<ProxyTunnel> {
  const dialer = await ensureDialerBinary();
  let listening = false;
  let port: number | undefined;
  let lastError: string | undefined;
  const via = opts.socketPath ? socketFetch(opts.socketPath) : fetch;
  const url = () => (opts.socketPath ? "http://ralph-ziti-dial" : `http://127.0.0.1:${port}`);
  // One per dialer process: its fatal error or a lasting "unavailable" ends the wait for it.
  let attempt = new AbortController();
  let unavailableTimer: NodeJS.Timeout | undefined;
  const onLine = (line: string) => {
    let e: DialerEvent;
    try {
      e = JSON.parse(line) as DialerEvent;
    } catch {
      return;
    }
    if (e.event === "listening" && e.address) {
      listening = true;
      if (!opts.socketPath) port ??= Number(e.address.split(":").pop());
    }
    if (e.event === "dial-error" || e.event === "fatal") lastError = e.message;
    if (e.event === "fatal") attempt.abort(new Error(`the dialer for ${opts.service} stopped: ${e.message}`));
    if (e.event === "dial-error" && !opts.awaitService && /has no terminators/.test(e.message ?? "")) {
      attempt.abort(
        new Error(
          opts.terminator
            ? `${opts.terminator} is not hosted on service ${opts.service} (no terminator of that name): ${e.message}`
            : `nothing hosts service ${opts.service} now (${e.message})`,
        ),
      );
    }
    if (e.event === "service") {
      clearTimeout(unavailableTimer);
      if (!e.available && !opts.awaitService) {
        const reason = new Error(
          `service ${opts.service} is not available to identity ${opts.identityFile}: the daemon may not be running, or no policy lets this identity dial it`,
        );
        unavailableTimer = setTimeout(() => attempt.abort(reason), 5000).unref();
      }
    }
  };
  const ready = async () => {
    try {
      await waitFor(async () => listening && (opts.readiness ?? httpAnswers)(url(), via), {
        what: `the overlay proxy for ${opts.service} to answer`,
        timeoutMs: opts.readyTimeoutMs ?? 30_000,
        intervalMs: 100,
        signal: attempt.signal,
      });
    } finally {
      clearTimeout(unavailableTimer);
    }
  };
  const spawnOptions = (): SpawnOptions => {
    attempt = new AbortController();
    return {
      name: "ralph-ziti-dial",
      command: dialer,
      args: ["-identity", opts.identityFile, "-service", opts.service, "-listen", opts.socketPath ? `unix:${opts.socketPath}` : `127.0.0.1:${port ?? 0}`, ...(opts.terminator ? ["-terminator", opts.terminator] : [])],
      logFile: opts.logFile,
      onLine,
    };
  };
  const tunnel = await supervise(spawnOptions, ready);
  try {
    await ready();
  } catch (err) {
    await tunnel.stop();
    throw err;
  }
  return { ...tunnel, url: url(), fetch: via, lastError: () => lastError };
}
