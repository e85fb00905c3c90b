import type { Command } from "commander";
import { withControlClient } from "../../client/connection.js";
import type { Catalog } from "../../daemon/catalog.js";
import type { Health } from "../../daemon/api.js";
import { printJson, style } from "../output.js";
import { remoteHelp, remoteOption } from "./loops.js";

export const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(bytes < 10 * 2 ** 20 ? 1 : 0)} MB`;

const diskLine = (d: Health["disk"]) =>
  d ? `disk: ${mb(d.totalBytes)} (worktrees ${mb(d.worktreesBytes)}, mirrors ${mb(d.mirrorsBytes)}, state ${mb(d.stateBytes)}; measured ${d.measuredAt})` : "disk: not measured yet";

export function registerDaemonInfoCommands(program: Command): void {
  program
    .command("health")
    .description("A remote daemon's health: uptime, loops, load, memory, disk, versions")
    .option(remoteOption, remoteHelp)
    .option("--json", "print as JSON")
    .action(async (o: { remote?: string; json?: boolean }) => {
      const h = await withControlClient(o.remote, (c) => c.call<Health>("GET", "/health"));
      if (o.json) return printJson(h);
      process.stdout.write(
        [
          `${style.bold(h.name)} ${h.healthy ? style.green("healthy") : style.red("unhealthy")}, up ${h.uptimeSeconds}s`,
          `loops: ${h.loops.active} active of ${h.loops.max}, ${h.loops.total} known`,
          `load: ${h.load.map((l) => l.toFixed(2)).join(" ")}; memory: ${mb(h.memory.rssBytes)} rss`,
          diskLine(h.disk),
          `versions: ralph ${h.versions.ralph}, node ${h.versions.node}, ziti ${h.versions.ziti}, opencode ${h.versions.opencode}`,
        ].join("\n") + "\n",
      );
    });

  program
    .command("models")
    .description("Models and agents loops can use on a remote daemon (from its opencode config and keys)")
    .option(remoteOption, remoteHelp)
    .option("--json", "print as JSON")
    .action(async (o: { remote?: string; json?: boolean }) => {
      const cat = await withControlClient(o.remote, (c) => c.call<Catalog>("GET", "/models"));
      if (o.json) return printJson(cat);
      const defaults = new Set(Object.entries(cat.defaults).map(([p, m]) => `${p}/${m}`));
      for (const m of cat.models) process.stdout.write(`${m.id}${defaults.has(m.id) ? style.dim(" (default)") : ""}\n`);
      process.stdout.write(`agents: ${cat.agents.filter((a) => a.mode !== "subagent").map((a) => a.name).join(", ")}\n`);
    });
}
