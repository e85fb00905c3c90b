import { spawn, type ChildProcess } from "node:child_process";
import { signalGroup } from "../process/supervisor.js";
import { BoundedLog } from "../util/bounded-log.js";
import { withoutTokens } from "../util/tokens.js";
import { sleep } from "../util/wait.js";
import { ensureHostBinary } from "./binary.js";

/**
 * The daemon's side of the overlay: tools/ziti/host (`ralph-ziti-host`)
 * hosts its services with nothing but the daemon's own identity, each under a
 * key: the control API, and every loop's opencode as an addressable
 * terminator (named by the loop's id) of the daemon's loops service.
 */
export interface ZitiHost {
  /**
   * Hosts `service` under `key`, forwarding to a Unix socket (a path) or
   * to 127.0.0.1:port (a number); with a
   * terminator, as that addressable terminator of it. Resolves once the
   * controller has the terminator (dialable); rejects with the helper's
   * reason (e.g. the identity may not bind that service). Hosting a key
   * again replaces what it hosted.
   */
  host(key: string, service: string, target: HostTarget, terminator?: string): Promise<void>;
  /** Stops hosting `key`; resolves when the helper has closed its listener. */
  unhost(key: string): Promise<void>;
  /**
   * Resolves when this identity may bind `service`, rejects with the reason
   * otherwise; hosts nothing, so it disturbs no other host of the service.
   */
  checkBind(service: string): Promise<void>;
  /** Instance ids of the terminators the controller lists for `service` (any host's, stale ones too). */
  terminators(service: string): Promise<string[]>;
  /** Keys hosted now, or to be hosted again after a restart. */
  hosted(): string[];
  pid(): number;
  /** How many times the helper died and was restarted. */
  restarts(): number;
  stop(): Promise<void>;
}

interface HostEvent {
  event: "ready" | "hosted" | "unhosted" | "checked" | "terminators" | "error" | "fatal";
  key?: string;
  message?: string;
  ids?: string[];
}

/** Where a hosting forwards: a Unix socket's path, or a port on 127.0.0.1. */
export type HostTarget = string | number;

interface Spec {
  service: string;
  target: HostTarget;
  terminator?: string;
}

type Op = "host" | "unhost" | "check" | "terminators";

interface InFlight {
  op: Op;
  /** A check's or a listing's service: it is asked again of a restarted helper. */
  service?: string;
  resolve: (answer?: HostEvent) => void;
  reject: (err: Error) => void;
}

/** Helpers still running, killed (with their group) when this process exits. */
const live = new Set<number>();
process.once("exit", () => {
  for (const pid of live) signalGroup(pid, "SIGKILL");
});

/**
 * Starts the host helper and keeps it running: when it dies it is restarted
 * with backoff and everything it hosted is hosted again; a hosting the
 * helper loses on its own (e.g. a router connection it cannot recover) is
 * retried too. Resolves after the helper's login; a login that fails (a
 * revoked identity, a controller that is down) rejects with the cause and
 * leaves nothing running.
 */
export async function startZitiHost(opts: {
  identityFile: string;
  logFile: string;
  readyTimeoutMs?: number;
  /** How long one host or unhost may take before it is given up (default 60 s). */
  opTimeoutMs?: number;
}): Promise<ZitiHost> {
  const bin = await ensureHostBinary();
  // The helper runs as long as the daemon: its log is bounded.
  const log = new BoundedLog(opts.logFile);
  const wanted = new Map<string, Spec>();
  const inFlight = new Map<string, InFlight>();
  // One operation per key at a time: the helper answers each command for a
  // key with exactly one event, so the answer to the one in flight is the next.
  const chains = new Map<string, Promise<unknown>>();
  const retryDelay = new Map<string, number>();
  let stopped = false;
  let restarts = 0;
  let child: ChildProcess;
  let ready = false;
  let lastFatal: string | undefined;
  let onReady: { resolve: () => void; reject: (e: Error) => void } | undefined;

  const write = (cmd: Record<string, unknown>) => {
    if (ready && child.stdin?.writable) child.stdin.write(JSON.stringify(cmd) + "\n");
  };
  const command = (key: string, op: Op, service?: string): Record<string, unknown> | undefined => {
    if (op === "unhost") return { op, key };
    if (op === "check" || op === "terminators") return { op, key, service };
    const spec = wanted.get(key);
    if (!spec) return undefined;
    const target = typeof spec.target === "number" ? { port: spec.target } : { socket: spec.target };
    return { op, key, service: spec.service, ...target, ...(spec.terminator ? { terminator: spec.terminator } : {}) };
  };

  const send = (key: string, op: Op, service?: string): Promise<HostEvent | undefined> =>
    new Promise<HostEvent | undefined>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (inFlight.get(key) !== entry) return;
        inFlight.delete(key);
        reject(new Error(`the Ziti host helper did not ${op} ${key} within ${(opts.opTimeoutMs ?? 60_000) / 1000} s; see ${opts.logFile}`));
      }, opts.opTimeoutMs ?? 60_000);
      const entry: InFlight = {
        op,
        service,
        resolve: (answer) => (clearTimeout(timer), resolve(answer)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      };
      inFlight.set(key, entry);
      const cmd = command(key, op, service);
      if (cmd) write(cmd);
      else entry.resolve();
    });

  const enqueue = <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const next = (chains.get(key) ?? Promise.resolve()).catch(() => undefined).then(fn);
    chains.set(key, next);
    void next.catch(() => undefined).then(() => {
      if (chains.get(key) === next) chains.delete(key);
    });
    return next;
  };

  /** Hosts a wanted key again (after a restart or a loss), retrying with backoff until it works or is no longer wanted. */
  const rehost = (key: string) => {
    void enqueue(key, async () => {
      if (stopped || !wanted.has(key)) return;
      await send(key, "host");
      retryDelay.delete(key);
    }).catch(async (err: Error) => {
      const delay = Math.min(30_000, retryDelay.get(key) ?? 1000);
      retryDelay.set(key, delay * 2);
      log.write(`ralph: hosting ${key} again failed (${err.message}); next try in ${delay} ms\n`);
      await sleep(delay);
      if (!stopped && wanted.has(key)) rehost(key);
    });
  };

  const onEvent = (e: HostEvent) => {
    if (e.event === "ready") {
      ready = true;
      lastFatal = undefined;
      // Commands that were in flight when the previous helper died go again.
      for (const [key, f] of inFlight) {
        const cmd = command(key, f.op, f.service);
        if (f.op === "unhost" || !cmd) {
          inFlight.delete(key);
          f.resolve();
        } else write(cmd);
      }
      for (const key of wanted.keys()) if (!inFlight.has(key) && restarts > 0) rehost(key);
      onReady?.resolve();
      return;
    }
    if (e.event === "fatal") {
      lastFatal = e.message;
      onReady?.reject(new Error(`the Ziti host helper stopped: ${e.message}`));
      return;
    }
    if (!e.key) return;
    const f = inFlight.get(e.key);
    if (e.event === "error" && !f) {
      // Lost without being asked: host it again if it is still wanted.
      if (wanted.has(e.key)) rehost(e.key);
      return;
    }
    if (!f) return;
    inFlight.delete(e.key);
    if (e.event === "error") f.reject(new Error(e.message ?? `the Ziti host helper could not ${f.op} ${e.key}`));
    else f.resolve(e);
  };

  const lines = (onLine: (line: string) => void) => {
    let pending = "";
    return (chunk: Buffer) => {
      pending += chunk.toString("utf8");
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        onLine(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
    };
  };

  const launch = (): Promise<void> => {
    ready = false;
    const started = new Promise<void>((resolve, reject) => (onReady = { resolve, reject }));
    // Its own process group, so stop() takes anything it started with it.
    child = spawn(bin, ["-identity", opts.identityFile], { detached: true, stdio: ["pipe", "pipe", "pipe"] });
    const proc = child;
    if (proc.pid !== undefined) live.add(proc.pid);
    proc.stdin!.on("error", () => undefined);
    proc.stdout!.on(
      "data",
      lines((line) => {
        let event: HostEvent | undefined;
        try {
          event = JSON.parse(line) as HostEvent;
        } catch {
          /* not an event */
        }
        // Listings answer the periodic reconciliation: they would only fill the log.
        if (event?.event !== "terminators") log.write(withoutTokens(line) + "\n");
        if (event) onEvent(event);
      }),
    );
    proc.stderr!.on("data", lines((line) => log.write(withoutTokens(line) + "\n")));
    proc.once("error", (err) => onReady?.reject(new Error(`cannot start the Ziti host helper ${bin}: ${err.message}`)));
    proc.once("exit", (code, signal) => {
      if (proc.pid !== undefined) {
        live.delete(proc.pid);
        signalGroup(proc.pid, "SIGKILL");
      }
      if (proc !== child) return;
      ready = false;
      const how = lastFatal ?? (signal ? `killed by ${signal}` : `exit code ${code}`);
      onReady?.reject(new Error(`the Ziti host helper exited during its login: ${how}; see ${opts.logFile}`));
      if (stopped) return;
      void restart();
    });
    const timer = setTimeout(
      () => onReady?.reject(new Error(`the Ziti host helper did not log in within ${(opts.readyTimeoutMs ?? 60_000) / 1000} s; see ${opts.logFile}`)),
      opts.readyTimeoutMs ?? 60_000,
    );
    return started.finally(() => clearTimeout(timer));
  };

  /** After the helper died: a new one, later; one that fails again is restarted from its own exit. */
  const restart = async () => {
    restarts++;
    await sleep(Math.min(10_000, 250 * 2 ** Math.min(restarts, 6)));
    if (stopped) return;
    try {
      await launch();
    } catch (err) {
      log.write(`ralph: restarting the Ziti host helper failed: ${(err as Error).message}\n`);
      if (child.exitCode === null && child.signalCode === null) signalGroup(child.pid!, "SIGKILL");
    }
  };

  const stopChild = async (graceMs: number) => {
    const proc = child;
    if (proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined) return;
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    proc.stdin?.end();
    signalGroup(proc.pid, "SIGTERM");
    const timer = setTimeout(() => signalGroup(proc.pid!, "SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  };

  const ask = (key: string, op: Op, service: string) =>
    enqueue(key, async () => {
      if (stopped) throw new Error("the Ziti host helper was stopped");
      return send(key, op, service);
    });

  try {
    await launch();
  } catch (err) {
    stopped = true;
    await stopChild(1000);
    log.end();
    throw err;
  }

  return {
    host: (key, service, target, terminator) =>
      enqueue(key, async () => {
        if (stopped) throw new Error("the Ziti host helper was stopped");
        wanted.set(key, { service, target, terminator });
        try {
          await send(key, "host");
        } catch (err) {
          wanted.delete(key);
          throw err;
        }
      }),
    unhost: (key) =>
      enqueue(key, async () => {
        wanted.delete(key);
        if (!stopped) await send(key, "unhost");
      }),
    // Their own keys: a check or a listing never waits behind, or replaces, a hosting.
    checkBind: (service) => ask(`check:${service}`, "check", service).then(() => undefined),
    terminators: async (service) => (await ask(`terminators:${service}`, "terminators", service))?.ids ?? [],
    hosted: () => [...wanted.keys()],
    pid: () => child.pid!,
    restarts: () => restarts,
    stop: async () => {
      stopped = true;
      await stopChild(3000);
      for (const [key, f] of inFlight) {
        inFlight.delete(key);
        f.reject(new Error("the Ziti host helper was stopped"));
      }
      log.end();
    },
  };
}
