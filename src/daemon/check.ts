import { accessSync, constants, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { homeDir } from "../config/paths.js";
import { opencodeBinary } from "../opencode/binary.js";
import { sandboxSupport } from "../sandbox/probe.js";
import { locateHostBinary } from "../ziti/binary.js";
import { startZitiHost, type ZitiHost } from "../ziti/host.js";
import { identityIdOf } from "../ziti/identity-file.js";
import { identityView } from "../ziti/reach.js";
import { controlServiceName, loopsServiceName } from "../ziti/roles.js";
import type { DaemonConfig } from "./config.js";

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
}

/** The controller an enrolled identity logs in to (its ztAPI), for messages. */
function controllerOf(identityFile: string): string {
  try {
    return (JSON.parse(readFileSync(identityFile, "utf8")) as { ztAPI?: string }).ztAPI ?? "its controller";
  } catch {
    return "its controller";
  }
}

/**
 * Everything ralphd needs, each with what to do when it is missing. The Ziti
 * checks use the daemon's own identity only, through its host helper: a login,
 * then whether it may bind its two services. Nothing is hosted, so a running
 * ralphd is not disturbed.
 */
export async function checkDaemon(config: DaemonConfig): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const check = async (name: string, fn: () => Promise<string> | string) => {
    try {
      results.push({ name, ok: true, detail: await fn() });
    } catch (err) {
      results.push({ name, ok: false, detail: (err as Error).message });
    }
  };
  await check("git", async () => {
    const r = await execa("git", ["--version"], { reject: false }).catch(() => undefined);
    if (!r || r.exitCode !== 0) throw new Error("git is not installed: install it (e.g. apt-get install git)");
    return r.stdout;
  });
  await check("ziti-host", () => locateHostBinary());
  await check("opencode", () => opencodeBinary());
  await check("sandbox", async () => {
    if (config.sandbox === "off") return `off (sandbox: "off" in the config): loops run unsandboxed, and their agent reaches everything this user can`;
    const s = await sandboxSupport();
    if (s.problem) throw new Error(s.problem);
    const user = s.root ? "each loop as an unprivileged user of its own" : "loops in user namespaces of their own";
    return `bubblewrap ${s.version} (${s.bwrap}): ${user}; limits by ${s.limits.detail}`;
  });
  await check("identity", () => `${config.identityFile} (id ${identityIdOf(config.identityFile)})`);
  // Reachability first, named by its real cause: the login below only knows it failed.
  await check("controller", async () => {
    const view = await identityView(config.identityFile);
    return `${controllerOf(config.identityFile)} answers from this host and knows this identity ("${view.name}")`;
  });
  let host: ZitiHost | undefined;
  try {
    await check("login", async () => {
      host = await startZitiHost({ identityFile: config.identityFile, logFile: join(homeDir("daemon"), "ziti-host-check.log"), readyTimeoutMs: 30_000 });
      return `logged in to ${controllerOf(config.identityFile)} with the daemon's own identity`;
    });
    await check("bind", async () => {
      if (!host) throw new Error("not checked: the identity did not log in");
      const services = [controlServiceName(config.name), loopsServiceName(config.name)];
      for (const service of services) {
        await host.checkBind(service).catch((err: Error) => {
          throw new Error(
            `${err.message}; the network's admin provisions a daemon's services ('ralph ziti up' for the local daemon, 'ralph ziti identity create ${config.name} --role daemon' for another machine)`,
          );
        });
      }
      return `may bind ${services.join(" and ")}`;
    });
  } finally {
    await host?.stop();
  }
  await check("workspace", () => {
    mkdirSync(config.workspaceDir, { recursive: true, mode: 0o700 });
    try {
      accessSync(config.workspaceDir, constants.W_OK);
    } catch {
      throw new Error(`${config.workspaceDir} is not writable: fix its permissions or set workspaceDir`);
    }
    return config.workspaceDir;
  });
  return results;
}
