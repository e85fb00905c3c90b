import { accessSync, constants, mkdirSync } from "node:fs";
import { execa } from "execa";
import { opencodeBinary } from "../opencode/binary.js";
import { locateZitiBinary } from "../ziti/binary.js";
import { identityIdOf } from "../ziti/identity-file.js";
import { ManagementClient } from "../ziti/mgmt.js";
import type { DaemonConfig } from "./config.js";

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
}

/** Everything ralphd needs, each with what to do when it is missing. */
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
  await check("ziti", () => locateZitiBinary());
  await check("opencode", () => opencodeBinary());
  await check("identity", () => `${config.identityFile} (id ${identityIdOf(config.identityFile)})`);
  await check("controller", async () => {
    const m = await ManagementClient.connect(config.controller);
    await m.close();
    return `${config.controller.url} reachable, CA verified, credentials accepted`;
  });
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
