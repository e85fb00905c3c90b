import type { LoopResult } from "../loop/engine.js";
import type { StreamEvent } from "../contract/events.js";
import type { LoopSummary, PruneResult } from "../contract/schemas.js";
import type { LoopEvent, LoopStatus } from "../loop/events.js";
import { describeBudgetHit, formatCost, formatUsage } from "../loop/usage.js";
import type { SandboxInfo } from "../sandbox/info.js";
import { ExitCode, type ExitCodeValue } from "./exit-codes.js";
import { style } from "./output.js";

// How the CLI shows loops and events to a person. Light on purpose: every command may load it.

export const exitCodeForStatus = (status: LoopStatus): ExitCodeValue =>
  ({ completed: ExitCode.Ok, exhausted: ExitCode.Exhausted, failed: ExitCode.Failed, stopped: ExitCode.Stopped, budget: ExitCode.Budget })[status];

const oneLine = (s: string): string => {
  const first = s.split("\n").find((l) => l.trim()) ?? "";
  return first.length > 80 ? first.slice(0, 77) + "..." : first;
};

/** A sandbox in a few words: its network, its limits and how they are enforced. */
export function describeSandbox(s: SandboxInfo): string {
  if (s.mode === "off") return "no sandbox";
  const net = s.allowNet?.length ? `network: ${s.allowNet.join(", ")}` : "no network";
  const limits = s.limits ? `, ${s.limits.memoryMb} MB, ${s.limits.pids} processes, CPU weight ${s.limits.cpuWeight} (${s.enforcement})` : "";
  return `${net}${limits}`;
}

/** One human line per event on a terminal. */
export function describeEvent(e: LoopEvent): string | undefined {
  switch (e.type) {
    case "run.started": {
      const limits = [e.budget.maxCostUsd !== undefined && `${formatCost(e.budget.maxCostUsd)}`, e.budget.maxTokens !== undefined && `${e.budget.maxTokens} tokens`].filter(Boolean);
      const head = `${style.bold("ralph")} ${e.taskDir} on ${style.cyan(e.branch)}: ${e.passed}/${e.total} stories pass, up to ${e.maxIterations} iterations${limits.length ? ` or ${limits.join(" or ")}` : ""}`;
      return e.runId ? `${head}\n${style.dim(`run ${e.runId}: steer it from another shell with 'ralph say ${e.runId} "..."'`)}` : head;
    }
    case "opencode.started":
      return e.sandbox.mode === "on"
        ? style.dim(`opencode started in a sandbox (${describeSandbox(e.sandbox)})`)
        : style.yellow(`opencode started WITHOUT a sandbox: the agent can reach everything this user can`);
    case "sandbox.refused":
      return style.yellow(`   sandbox refused a connection to ${e.host}:${e.port}${e.count > 1 ? ` (${e.count} times)` : ""}: not on the allowlist (--allow-net ${e.host}:${e.port} allows it)`);
    case "loop.limit":
      return style.red(`   iteration ${e.iteration} hit the sandbox's ${e.limit === "memory" ? `memory limit (${e.max} MB)` : `process limit (${e.max})`}`);
    case "opencode.restarted":
      return style.yellow(`opencode restarted: ${e.reason}`);
    case "iteration.started":
      return `${style.bold(`#${e.iteration}`)} ${e.storyId ? `${e.storyId} ${e.storyTitle ?? ""}` : "(no story left unblocked)"}`;
    case "tool":
      return e.status === "running" || e.status === "pending" ? undefined : style.dim(`   ${e.tool} ${e.status}${e.title ? `: ${oneLine(e.title)}` : ""}`);
    case "iteration.ended": {
      const colour = e.outcome === "progress" ? style.green : e.outcome === "no-progress" ? style.yellow : style.red;
      return `   ${colour(e.outcome)} in ${(e.durationMs / 1000).toFixed(1)}s, ${e.passed}/${e.total} stories pass, ${formatUsage(e.usage)} (loop: ${formatUsage(e.totalUsage)})${e.error ? ` (${e.error})` : ""}`;
    }
    case "loop.asked":
      return style.yellow(`   asked (${e.kind}): ${oneLine(e.text)}; answered: ${oneLine(e.answer)}`);
    case "loop.stalled":
      return style.red(`   stalled: no activity from opencode for ${e.idleSeconds}s; iteration aborted`);
    case "loop.guidance":
      return style.cyan(`   guidance from the owner: ${oneLine(e.text)}`);
    case "loop.budget":
      return style.yellow(`${describeBudgetHit(e)}${e.duringIteration ? "; the iteration was cut short" : ""}`);
    case "run.ended":
      return undefined;
  }
}

export function summary(r: LoopResult): string {
  const colour = r.status === "completed" ? style.green : style.red;
  return `${colour(r.status)}: ${r.passed}/${r.total} stories pass after ${r.iterations} iteration(s) in ${(r.durationMs / 1000).toFixed(1)}s, ${formatUsage(r.usage)}${r.reason && r.status !== "completed" ? ` (${r.reason})` : ""}`;
}

const budgetOf = (l: LoopSummary): string => {
  const limits = [l.maxCostUsd !== null && formatCost(l.maxCostUsd), l.maxTokens !== null && `${l.maxTokens} tokens`].filter(Boolean);
  return limits.length ? ` of ${limits.join(" / ")}` : "";
};

/** One loop on one line; `remote` leads when loops of several remotes are listed together. */
export const loopLine = (l: LoopSummary, remote?: string) =>
  `${remote !== undefined ? `${remote.padEnd(12)}  ` : ""}${l.id}  ${l.status.padEnd(9)}  ${l.branch}  ${l.passed}/${l.total} stories  iteration ${l.iteration}/${l.maxIterations}  ${formatCost(l.usage.costUsd)}${l.sandbox.mode === "off" ? `  ${style.yellow("UNSANDBOXED")}` : ""}${l.storyId ? `  ${l.storyId}` : ""}${l.reason && l.status !== "completed" ? `  (${l.reason})` : ""}`;

export const loopDetails = (l: LoopSummary) =>
  [
    loopLine(l),
    `  origin ${l.origin}, task ${l.taskDir}${l.model ? `, model ${l.model}` : ""}`,
    `  sandbox: ${l.sandbox.mode === "on" ? describeSandbox(l.sandbox) : style.yellow("none (sandbox \"off\" in the daemon's config): the agent reaches everything the daemon's user can")}`,
    `  used ${formatUsage(l.usage)}${budgetOf(l)} (input ${l.usage.tokens.input}, output ${l.usage.tokens.output}, reasoning ${l.usage.tokens.reasoning}, cache read ${l.usage.tokens.cacheRead}, cache write ${l.usage.tokens.cacheWrite})`,
    `  started ${l.createdAt}${l.endedAt ? `, ended ${l.endedAt}` : ""}${l.prunedAt ? `; worktree and log removed ${l.prunedAt}` : ""}`,
  ].join("\n");

/** One human line for an event of a daemon's stream. */
export function describeDaemonEvent(e: StreamEvent): string | undefined {
  if (e.type === "loop.status") return `loop ${e.loopId} ${style.bold(e.status)}${e.reason ? ` (${e.reason})` : ""}`;
  if (e.type === "loop.pushed") return style.dim(`   pushed ${e.branch} at ${e.commit.slice(0, 7)} to the origin`);
  if (e.type === "loop.push-failed") return style.yellow(`   push of ${e.branch} failed (tried again later): ${e.error}`);
  return describeEvent(e);
}

export const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(bytes < 10 * 2 ** 20 ? 1 : 0)} MB`;

export const pruned = (r: PruneResult) =>
  `${r.loops.length ? `removed ${r.loops.join(", ")}` : "no loop to remove"}${r.mirrors ? ` and ${r.mirrors} unused mirror(s)` : ""}: ${mb(r.freedBytes)} freed\n`;
