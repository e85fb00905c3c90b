import { SupervisedProcess } from "../process/supervisor.js";
import { freePort } from "../util/ports.js";
import { sleep, waitFor } from "../util/wait.js";
import { ensureZitiBinary } from "./binary.js";

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
 * until stopped.
 */
async function supervise(name: string, command: string, args: string[], logFile: string, onRestart?: () => Promise<void>): Promise<Tunnel> {
  let stopped = false;
  let restarts = 0;
  const spawn = () => SupervisedProcess.spawn({ name, command, args, logFile });
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

// The CLI agent is a debugging socket per process; tunnelers don't need it.
const common = ["--cli-agent=false", "--svcPollRate", "1"];

/** Hosts every service the identity may Bind, forwarding to its host.v1 address. */
export async function startHostTunnel(opts: { identityFile: string; logFile: string; kind?: "ziti" | "ziti-edge-tunnel" }): Promise<Tunnel> {
  if (opts.kind === "ziti-edge-tunnel") {
    return supervise("ziti-edge-tunnel run-host", "ziti-edge-tunnel", ["run-host", "-i", opts.identityFile], opts.logFile);
  }
  const ziti = await ensureZitiBinary();
  return supervise("ziti tunnel host", ziti, ["tunnel", "host", "-i", opts.identityFile, ...common], opts.logFile);
}

/** Any HTTP answer through the proxy proves the overlay path works end to end. */
export async function httpAnswers(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
  await res.body?.cancel();
  return res.status > 0;
}

/**
 * A local listener that dials one service over the overlay. Readiness is a
 * real request through it: the listener can exist before the service does.
 */
export async function startProxyTunnel(opts: {
  identityFile: string;
  service: string;
  localPort?: number;
  logFile: string;
  readiness?: (url: string) => Promise<boolean>;
  readyTimeoutMs?: number;
}): Promise<ProxyTunnel> {
  const ziti = await ensureZitiBinary();
  const port = opts.localPort ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const ready = () =>
    waitFor(() => (opts.readiness ?? httpAnswers)(url), {
      what: `the overlay proxy for ${opts.service} on ${url} to answer`,
      timeoutMs: opts.readyTimeoutMs ?? 30_000,
      intervalMs: 150,
    });
  const tunnel = await supervise("ziti tunnel proxy", ziti, ["tunnel", "proxy", "-i", opts.identityFile, ...common, `${opts.service}:${port}`], opts.logFile, async () => {
    await ready();
  });
  try {
    await ready();
  } catch (err) {
    await tunnel.stop();
    throw err;
  }
  return { ...tunnel, port, url };
}
