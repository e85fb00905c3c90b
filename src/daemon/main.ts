import { serve } from "@hono/node-server";
import { writeFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { homeDir } from "../config/paths.js";
import { freePort } from "../util/ports.js";
import { ManagementClient } from "../ziti/mgmt.js";
import { controlServiceName } from "../ziti/roles.js";
import { startHostTunnel } from "../ziti/tunnel.js";
import { controlApi } from "./api.js";
import type { DaemonConfig } from "./config.js";
import { LoopManager } from "./manager.js";
import { Store } from "./store.js";

export const runtimeFile = (): string => join(homeDir("daemon"), "ralphd.json");

/** Runs the daemon until SIGTERM/SIGINT. */
export async function runDaemon(config: DaemonConfig, log: (line: string) => void): Promise<void> {
  const startedAt = Date.now();
  const store = new Store(join(homeDir("daemon"), "state.db"));
  const mgmt = await ManagementClient.connect(config.controller);
  const manager = new LoopManager(config, store, mgmt, log);
  const port = await freePort();
  const server = serve({ fetch: controlApi({ manager, store, startedAt, maxConcurrentLoops: config.maxConcurrentLoops, name: config.name }).fetch, hostname: "127.0.0.1", port });
  const host = await startHostTunnel({ identityFile: config.identityFile, logFile: join(homeDir("daemon"), "host-tunnel.log"), kind: config.hostTunneler });
  const service = controlServiceName(config.name);
  await mgmt.deregisterService(service);
  await mgmt.registerService(service, { port });
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
  await mgmt.deregisterService(service).catch(() => undefined);
  await host.stop();
  server.close();
  await mgmt.close();
  store.close();
  rmSync(runtimeFile(), { force: true });
}
