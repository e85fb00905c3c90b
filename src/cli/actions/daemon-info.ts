import { expectOk } from "../../client/api.js";
import { agentLogPath } from "../../client/agent/protocol.js";
import { AgentConnection, stopAgent } from "../../client/agent/client.js";
import { withControlClient } from "../../client/connection.js";
import type { Health } from "../../contract/schemas.js";
import { BoundedLog } from "../../util/bounded-log.js";
import { mb } from "../describe.js";
import { printJson, style } from "../output.js";

type Flags = { remote?: string; json?: boolean };

const diskLine = (d: Health["disk"]) =>
  d ? `disk: ${mb(d.totalBytes)} (worktrees ${mb(d.worktreesBytes)}, mirrors ${mb(d.mirrorsBytes)}, state ${mb(d.stateBytes)}; measured ${d.measuredAt})` : "disk: not measured yet";

export async function health(o: Flags): Promise<void> {
  const h = await withControlClient(o.remote, (c) => expectOk(c.remoteName, c.api.health.$get()));
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
}

export async function models(o: Flags): Promise<void> {
  const cat = await withControlClient(o.remote, (c) => expectOk(c.remoteName, c.api.models.$get()));
  if (o.json) return printJson(cat);
  const defaults = new Set(Object.entries(cat.defaults).map(([p, m]) => `${p}/${m}`));
  for (const m of cat.models) process.stdout.write(`${m.id}${defaults.has(m.id) ? style.dim(" (default)") : ""}\n`);
  process.stdout.write(`agents: ${cat.agents.filter((a) => a.mode !== "subagent").map((a) => a.name).join(", ")}\n`);
}

export async function agentStatus(o: { json?: boolean }): Promise<void> {
  const agent = await AgentConnection.connect({ start: false });
  if (!agent) {
    if (o.json) return printJson({ running: false });
    process.stdout.write("the client agent is not running (the next command that reaches a remote starts it)\n");
    return;
  }
  try {
    const a = await agent.ask({ op: "status" });
    if (!a.ok || !a.status) throw new Error(a.ok ? "the agent gave no status" : a.message);
    if (o.json) return printJson({ running: true, ...a.status });
    process.stdout.write(`client agent pid ${a.status.pid}, exits after ${a.status.idleExitSeconds} s without a command\n`);
    for (const d of a.status.dialers) process.stdout.write(`  ${d.label}  ${d.service}  dialer pid ${d.pid}, idle ${d.idleSeconds} s\n`);
    if (a.status.dialers.length === 0) process.stdout.write("  no dialers\n");
  } finally {
    agent.close();
  }
}

export async function agentRun(): Promise<void> {
  // Bounded: the agent comes back after every idle exit and appends to the same file.
  const file = new BoundedLog(agentLogPath(), 2 ** 20);
  const log = (line: string) => file.write(`${new Date().toISOString()} ${line}\n`);
  const { runAgent } = await import("../../client/agent/server.js");
  // It runs until idle or stopped, and ends the process itself.
  await runAgent(log);
}

export async function agentStop(): Promise<void> {
  process.stderr.write((await stopAgent()) ? "stopped the client agent\n" : "the client agent was not running\n");
}
