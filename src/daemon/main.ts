import { createAdaptorServer } from "@hono/node-server";
import { chmodSync, existsSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { homeDir, ralphHome } from "../config/paths.js";
import { commandLineOf } from "../process/proc-scan.js";
import { pidAlive } from "../process/supervisor.js";
import { startZitiHost } from "../ziti/host.js";
import { controlServiceName } from "../ziti/roles.js";
import { controlApi } from "./api.js";
import type { DaemonConfig } from "./config.js";
import { LoopManager } from "./manager.js";
import { SHUTDOWN } from "./loop-notifications.js";
import { heartbeatFile } from "./loop-sandbox.js";
import { Notifier } from "./notify.js";
import { Store } from "./store.js";

/** The host helper's key for the control API; loops are keyed by their ids (hex, never this). */
const CONTROL_KEY = "control";

export const runtimeFile = (): string => join(homeDir("daemon"), "ralphd.json");

/**
 * The control API's socket: in the daemon's 0700 directory, so only the
 * daemon's user (its host helper) can reach it; never a TCP port, which any
 * local process, a loop's agent among them, could connect to.
 */
export const controlSocket = (): string => join(homeDir("daemon", "run"), "control.sock");

/** The pid of the ralphd serving this RALPH_HOME, if one runs. */
export function runningDaemonPid(): number | undefined {
  const file = runtimeFile();
  if (!existsSync(file)) return undefined;
  const { pid } = JSON.parse(readFileSync(file, "utf8")) as { pid: number };
  return pidAlive(pid) && commandLineOf(pid)?.some((a) => /ralphd/.test(a)) ? pid : undefined;
}

const PRUNE_MS = 60 * 60_000;

/** Runs `task` now and every `ms`, logging (not throwing) its failures. */
function every(ms: number, task: () => Promise<unknown>, what: string, log: (line: string) => void): NodeJS.Timeout {
  const run = () => void task().catch((err: unknown) => log(`${what} failed: ${(err as Error).message}`));
  run();
  return setInterval(run, ms).unref();
}

/** Runs the daemon until SIGTERM/SIGINT. */
export async function runDaemon(config: DaemonConfig, log: (line: string) => void): Promise<void> {
  const other = runningDaemonPid();
  if (other) throw new Error(`ralphd is already running for ${ralphHome()} (pid ${other}): stop it first, or set RALPH_HOME for a second daemon`);
  // The daemon's only Ziti credential is its own identity: the helper logs in
  // with it and hosts the services the admin side provisioned for it. It dies
  // with this process, so a ralphd killed outright leaves nothing hosting.
  const host = await startZitiHost({ identityFile: config.identityFile, logFile: join(homeDir("daemon"), "ziti-host.log") });
  const store = new Store(join(homeDir("daemon"), "state.db"));
  const notifier = new Notifier(config.notify, log);
  const manager = new LoopManager(config, store, host, log, notifier);
  const app = controlApi(manager);
  const socket = controlSocket();
  // A socket left by a daemon that was killed: no daemon runs (checked above).
  rmSync(socket, { force: true });
  const server = createAdaptorServer({ fetch: app.fetch });
  await new Promise<void>((resolveListen, reject) => {
    server.once("error", reject);
    server.listen(socket, () => resolveListen());
  });
  chmodSync(socket, 0o600);
  const service = controlServiceName(config.name);
  try {
    await host.host(CONTROL_KEY, service, socket);
  } catch (err) {
    await host.stop();
    server.close();
    store.close();
    throw new Error(`cannot host the control service ${service}: ${(err as Error).message}`);
  }
  // Before any loop starts or is adopted: their sandboxes stop themselves without it.
  const beat = () => {
    const now = new Date();
    try {
      utimesSync(heartbeatFile(), now, now);
    } catch {
      writeFileSync(heartbeatFile(), "", { mode: 0o600 });
    }
  };
  beat();
  const heartbeat = setInterval(beat, Math.min(10_000, (config.orphanStopSeconds * 1000) / 4)).unref();
  const { adopted, failed } = await manager.readopt();
  if (adopted.length) log(`re-adopted running loops: ${adopted.join(", ")}`);
  if (failed.length) log(`marked failed (their opencode was gone): ${failed.join(", ")}`);
  writeFileSync(runtimeFile(), JSON.stringify({ pid: process.pid, socket, service }) + "\n", { mode: 0o600 });
  log(`ralphd ${config.name} ready: control service ${service} -> ${socket}`);
  // Housekeeping now and then periodically: a failure is logged, never fatal.
  const housekeeping = [
    every(config.reconcileIntervalSeconds * 1000, () => manager.reconcile(), "reconciling Ziti registrations", log),
    every(PRUNE_MS, () => manager.prune(), "pruning finished loops", log),
  ];

  const sig = await new Promise<string>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  for (const timer of [...housekeeping, heartbeat]) clearInterval(timer);
  if (config.shutdown === "stop-loops" || takeStopLoopsRequest()) {
    log(`${sig}: ending every loop ("${SHUTDOWN}") and leaving`);
    await manager.stopAll();
  } else {
    const left = manager.detach();
    log(`${sig}: leaving${left.length ? `; loops ${left.join(", ")} run on for the next ralphd to re-adopt (they stop themselves after ${config.orphanStopSeconds} s without one)` : ""}`);
  }
  // Loops that ended just now are reported before we go.
  await notifier.close();
  await host.unhost(CONTROL_KEY).catch(() => undefined);
  await host.stop();
  // Followers' event streams would otherwise keep the process alive until they hang up.
  server.close();
  (server as { closeAllConnections?: () => void }).closeAllConnections?.();
  store.close();
  rmSync(runtimeFile(), { force: true });
  rmSync(socket, { force: true });
  // Loops let go of may still have work in flight here: it is the next daemon's.
  process.exit(0);
}

/** Where 'ralphd stop --loops' asks the running daemon to end its loops as it stops. */
export const stopLoopsRequestFile = (): string => join(homeDir("daemon", "run"), "stop-loops");

/** Whether this stop was asked to end the loops (the request is used up). */
function takeStopLoopsRequest(): boolean {
  if (!existsSync(stopLoopsRequestFile())) return false;
  rmSync(stopLoopsRequestFile(), { force: true });
  return true;
}
