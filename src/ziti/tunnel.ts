import { SupervisedProcess, type SpawnOptions } from "../process/supervisor.js";
import { sleep, waitFor } from "../util/wait.js";
import { ensureDialerBinary } from "./binary.js";

export interface Tunnel {
  pid(): number;
  /** How many times the tunneler died and was restarted. */
  restarts(): number;
  stop(): Promise<void>;
}

export interface ProxyTunnel extends Tunnel {
  port: number;
  /** http://127.0.0.1:PORT */
  url: string;
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
export async function httpAnswers(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
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
 * A listener on 127.0.0.1 that dials one service over the overlay with a
 * client identity (tools/ziti/dialer; `ziti tunnel proxy` would listen on
 * every interface). It keeps its port across restarts. Readiness is a real
 * request through it; a refused identity, or a service this identity cannot
 * see for 5 s, fails at once with the reason.
 */
export async function startProxyTunnel(opts: {
  identityFile: string;
  service: string;
  logFile: string;
  readiness?: (url: string) => Promise<boolean>;
  readyTimeoutMs?: number;
  /** Wait for a service that is still being registered, instead of failing after 5 s without it. */
  awaitService?: boolean;
  /**
   * Dial only this addressable terminator of the service (a loop's id on the
   * daemon's loops service). Without awaitService, a dial the controller
   * answers with "no terminators for instanceId" fails the start at once.
   */
  terminator?: string;
}): Promise<ProxyTunnel> {
  const dialer = await ensureDialerBinary();
  let port: number | undefined;
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
    if (e.event === "listening" && e.address) port ??= Number(e.address.split(":").pop());
    if (e.event === "fatal") attempt.abort(new Error(`the dialer for ${opts.service} stopped: ${e.message}`));
    if (e.event === "dial-error" && opts.terminator && !opts.awaitService && /no terminators for instanceId/.test(e.message ?? "")) {
      attempt.abort(new Error(`${opts.terminator} is not hosted on service ${opts.service} (no terminator of that name): ${e.message}`));
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
      await waitFor(async () => port !== undefined && (opts.readiness ?? httpAnswers)(`http://127.0.0.1:${port}`), {
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
      args: ["-identity", opts.identityFile, "-service", opts.service, "-listen", `127.0.0.1:${port ?? 0}`, ...(opts.terminator ? ["-terminator", opts.terminator] : [])],
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
  return { ...tunnel, port: port!, url: `http://127.0.0.1:${port}` };
}
