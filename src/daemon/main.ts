import { serve } from "@hono/node-server";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { homeDir, ralphHome } from "../config/paths.js";
import { commandLineOf, findProcesses } from "../process/proc-scan.js";
import { pidAlive, signalGroup } from "../process/supervisor.js";
import { identityIdOf } from "../ziti/identity-file.js";
import { ManagementClient } from "../ziti/mgmt.js";
import { controlServiceName } from "../ziti/roles.js";
import { startHostTunnel } from "../ziti/tunnel.js";
import { controlApi } from "./api.js";
import type { DaemonConfig } from "./config.js";
import { LoopManager } from "./manager.js";
import { Notifier } from "./notify.js";
import { Store } from "./store.js";

export const runtimeFile = (): string => join(homeDir("daemon"), "ralphd.json");

/** The pid of the ralphd serving this RALPH_HOME, if one runs. */
export function runningDaemonPid(): number | undefined {
  const file = runtimeFile();
  if (!existsSync(file)) return undefined;
  const { pid } = JSON.parse(readFileSync(file, "utf8")) as { pid: number };
  return pidAlive(pid) && commandLineOf(pid)?.some((a) => /ralphd/.test(a)) ? pid : undefined;
}

/**
 * A ralphd killed outright leaves its host tunneler running with our
 * identity; a new one would bind beside it. Stop those first.
 */
function stopStaleHostTunnelers(identityFile: string): number[] {
  const stale = findProcesses((argv) => argv.includes("tunnel") && argv.includes("host") && argv.includes(identityFile));
  for (const pid of stale) signalGroup(pid, "SIGKILL");
  return stale;
}

/** Runs the daemon until SIGTERM/SIGINT. */
export async function runDaemon(config: DaemonConfig, log: (line: string) => void): Promise<void> {
  const other = runningDaemonPid();
  if (other) throw new Error(`ralphd is already running for ${ralphHome()} (pid ${other}): stop it first, or set RALPH_HOME for a second daemon`);
  const startedAt = Date.now();
  const stale = stopStaleHostTunnelers(config.identityFile);
  if (stale.length) log(`stopped host tunnelers left by an earlier ralphd: ${stale.join(", ")}`);
  const store = new Store(join(homeDir("daemon"), "state.db"));
  const mgmt = await ManagementClient.connect(config.controller);
  // This identity may host exactly this daemon's services, nothing else.
  await mgmt.ensureDaemonBindPolicy(config.name, identityIdOf(config.identityFile));
  const notifier = new Notifier(config.notify, log);
  const manager = new LoopManager(config, store, mgmt, log, notifier);
  const app = controlApi({ manager, store, notifier, startedAt, maxConcurrentLoops: config.maxConcurrentLoops, name: config.name });
  let server: ReturnType<typeof serve> | undefined;
  const port = await new Promise<number>((resolvePort) => {
    server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, (info) => resolvePort(info.port));
  });
  const host = await startHostTunnel({ identityFile: config.identityFile, logFile: join(homeDir("daemon"), "host-tunnel.log"), kind: config.hostTunneler });
  const service = controlServiceName(config.name);
  await mgmt.deregisterService(service);
  await mgmt.registerService(service, { port, daemon: config.name });
  const { adopted, failed } = manager.readopt();
  if (adopted.length) log(`re-adopted running loops: ${adopted.join(", ")}`);
  if (failed.length) log(`marked failed (their opencode was gone): ${failed.join(", ")}`);
  writeFileSync(runtimeFile(), JSON.stringify({ pid: process.pid, port, service }) + "\n", { mode: 0o600 });
  log(`ralphd ${config.name} ready: control service ${service} -> 127.0.0.1:${port}`);

  await new Promise<void>((resolve) => {
    const shutdown = (sig: string) => {
      log(`${sig}: stopping loops and leaving`);
      resolve();
    };
    process.once("SIGTERM", () => shutdown("SIGTERM"));
    process.once("SIGINT", () => shutdown("SIGINT"));
  });
  await manager.stopAll();
  // Loops that ended just now are reported before we go.
  await notifier.close();
  await mgmt.deregisterService(service).catch(() => undefined);
  await host.stop();
  // Followers' event streams would otherwise keep the process alive until they hang up.
  server?.close();
  (server as { closeAllConnections?: () => void } | undefined)?.closeAllConnections?.();
  await mgmt.close();
  store.close();
  rmSync(runtimeFile(), { force: true });
}
