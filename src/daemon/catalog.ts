import { chownSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Catalog } from "../contract/schemas.js";
import { clientFor } from "../opencode/session.js";
import { startOpencodeServer } from "../opencode/server.js";
import { DEFAULT_LIMITS } from "../sandbox/limits.js";
import type { OpencodeSettings } from "./opencode-settings.js";


/**
 * Asks a short-lived opencode, started with the daemon's env file and config
 * in a sandbox like a loop's (with no network: it only lists), which models
 * and agents loops on this daemon can use. Provider keys and options stay out
 * of the answer.
 */
export async function readCatalog(dir: string, settings: OpencodeSettings, sandbox: { enabled: boolean; user?: { uid: number; gid: number } }): Promise<Catalog> {
  const scratch = join(dir, `catalog-${process.pid}-${Date.now()}`);
  const worktree = join(scratch, "work");
  mkdirSync(worktree, { recursive: true, mode: 0o700 });
  if (sandbox.user) for (const d of [scratch, worktree]) chownSync(d, sandbox.user.uid, sandbox.user.gid);
  const server = await startOpencodeServer({
    sandbox: { ...sandbox, name: `catalog-${process.pid}`, dir: join(scratch, "box"), worktree, ro: [], allow: [], limits: DEFAULT_LIMITS, onRefused: () => undefined },
    logFile: join(scratch, "opencode.log"),
    ...settings,
  });
  try {
    const client = clientFor(server);
    const [providers, agents] = await Promise.all([client.config.providers(), client.app.agents()]);
    if (!providers.data || !agents.data) throw new Error(`opencode did not list its providers and agents: ${JSON.stringify(providers.error ?? agents.error)}`);
    return {
      models: providers.data.providers.flatMap((p) => Object.values(p.models).map((m) => ({ id: `${p.id}/${m.id}`, name: m.name, provider: p.name }))),
      defaults: providers.data.default,
      agents: agents.data.map((a) => ({ name: a.name, mode: a.mode, ...(a.description ? { description: a.description } : {}) })),
      checkedAt: new Date().toISOString(),
    };
  } finally {
    await server.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}
