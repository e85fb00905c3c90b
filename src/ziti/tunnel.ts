import { execa } from "execa";
import { SupervisedProcess, type SpawnOptions } from "../process/supervisor.js";
import { UnavailableError } from "../util/errors.js";
import { sleep, waitFor } from "../util/wait.js";
import { ensureDialerBinary, ensureZitiBinary } from "./binary.js";

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

/**
 * Hosts every service the identity may Bind, forwarding to its host.v1
 * address. The service poll rate is the minimum, so a new service is hosted
 * within about a second. One default connection to the router keeps flow
 * control in the router: with two (the default) the SDK does it, and in ziti
 * 1.7.2 its hosting side stalled for good once clients aborted streams (every
 * later dial of the service timed out; a stress test reproduced it).
 */
export async function startHostTunnel(opts: { identityFile: string; logFile: string; kind?: "ziti" | "ziti-edge-tunnel" }): Promise<Tunnel> {
  // The host writes its own log: a pipe would kill it with SIGPIPE whenever
  // its parent died first, so whether a crashed ralphd left one behind (for
  // the next ralphd to stop) would be a race.
  const output = { logFile: opts.logFile, outputToFileOnly: true };
  if (opts.kind === "ziti-edge-tunnel") {
    const probe = await execa("ziti-edge-tunnel", ["version"], { reject: false });
    if (probe.exitCode !== 0) {
      throw new UnavailableError("hostTunneler is ziti-edge-tunnel, but 'ziti-edge-tunnel version' does not run: install it on PATH, or set hostTunneler to \"ziti\"");
    }
    return supervise(() => ({ name: "ziti-edge-tunnel run-host", command: "ziti-edge-tunnel", args: ["run-host", "-i", opts.identityFile], ...output }));
  }
  const ziti = await ensureZitiBinary();
  // The CLI agent is a debugging socket per process; a tunneler needs none.
  const args = ["tunnel", "host", "-i", opts.identityFile, "--cli-agent=false", "--svcPollRate", "1", "--default-connections", "1"];
  return supervise(() => ({ name: "ziti tunnel host", command: ziti, args, ...output }));
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
