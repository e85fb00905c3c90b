import { Command, InvalidArgumentError } from "commander";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { ContainmentError } from "../../loop/contained.js";
import { openTask, runLoop, type LoopResult } from "../../loop/engine.js";
import type { LoopEvent, LoopStatus } from "../../loop/events.js";
import { registerLocalRun } from "../../loop/local-runs.js";
import { describeBudgetHit, formatCost, formatUsage } from "../../loop/usage.js";
import { opencodeBinary } from "../../opencode/binary.js";
import { PrdError } from "../../prd/prd.js";
import { CliError, ExitCode, type ExitCodeValue } from "../exit-codes.js";
import { printJson, style } from "../output.js";

export const exitCodeForStatus = (status: LoopStatus): ExitCodeValue =>
  ({ completed: ExitCode.Ok, exhausted: ExitCode.Exhausted, failed: ExitCode.Failed, stopped: ExitCode.Stopped, budget: ExitCode.Budget })[status];

export const positiveInt = (name: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a whole number of at least 1`);
  return n;
};

export const positiveAmount = (name: string) => (v: string): number => {
  const n = Number(v.replace(/^\$/, ""));
  if (!Number.isFinite(n) || n <= 0 || v.trim() === "") throw new InvalidArgumentError(`${name} must be a positive amount in US dollars, e.g. 2.50`);
  return n;
};

export const permissionPolicy = (v: string): "reject" | "allow" => {
  if (v !== "reject" && v !== "allow") throw new InvalidArgumentError(`--on-permission must be "reject" or "allow"`);
  return v;
};

const oneLine = (s: string): string => {
  const first = s.split("\n").find((l) => l.trim()) ?? "";
  return first.length > 80 ? first.slice(0, 77) + "..." : first;
};

/** One human line per event on a terminal. */
export function describeEvent(e: LoopEvent): string | undefined {
  switch (e.type) {
    case "run.started": {
      const limits = [e.budget.maxCostUsd !== undefined && `${formatCost(e.budget.maxCostUsd)}`, e.budget.maxTokens !== undefined && `${e.budget.maxTokens} tokens`].filter(Boolean);
      const head = `${style.bold("ralph")} ${e.taskDir} on ${style.cyan(e.branch)}: ${e.passed}/${e.total} stories pass, up to ${e.maxIterations} iterations${limits.length ? ` or ${limits.join(" or ")}` : ""}`;
      return e.runId ? `${head}\n${style.dim(`run ${e.runId}: steer it from another shell with 'ralph say ${e.runId} "..."'`)}` : head;
    }
    case "opencode.started":
      return style.dim(`opencode reachable at ${e.url} (pid ${e.pid})`);
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

/** Errors that mean the task given is unusable as it stands: exit code 2, with the message. */
function asInvalidInput(err: unknown): unknown {
  const invalid = err instanceof PrdError || err instanceof ContainmentError || (err instanceof Error && /uncommitted changes|not a valid git branch|not a git repository/.test(err.message));
  return invalid ? new CliError((err as Error).message, ExitCode.InvalidInput) : err;
}

export function registerRunCommand(program: Command): void {
  program
    .command("run")
    .description("Run a Ralph loop locally on TASK_DIR/prd.json until every story passes")
    .argument("<task-dir>", "directory holding prd.json (inside a git repository)")
    .option("--max-iterations <n>", "iteration budget", positiveInt("--max-iterations"), 10)
    .option("--model <provider/model>", "model for opencode (default: the repo's opencode config)")
    .option("--iteration-timeout <seconds>", "time limit per iteration", positiveInt("--iteration-timeout"), 1800)
    .option("--max-cost <usd>", "stop once the loop has cost this much (needs a model with a price in opencode's config)", positiveAmount("--max-cost"))
    .option("--max-tokens <n>", "stop once the loop has used this many tokens (input, output, reasoning and cache)", positiveInt("--max-tokens"))
    .option("--stall-timeout <seconds>", "abort an iteration after this long with no activity from opencode", positiveInt("--stall-timeout"), 300)
    .option("--on-permission <policy>", "answer opencode's permission requests: reject or allow (questions are always answered 'no human is available')", permissionPolicy, "reject")
    .option("--json", "print one JSON event per line")
    .action(async (taskDirArg: string, o: RunFlags) => {
      const taskDir = resolve(taskDirArg);
      const prdFile = join(taskDir, "prd.json");
      if (!existsSync(prdFile)) throw new CliError(`no prd.json in ${taskDir}: create one, or pass the directory that holds it`, ExitCode.InvalidInput);
      await openTask(taskDir).catch((err: unknown) => {
        throw asInvalidInput(err);
      });
      // Before the loop touches the repository (it switches branches).
      opencodeBinary();
      const stop = new AbortController();
      let signals = 0;
      const onSignal = (sig: NodeJS.Signals) => {
        // First signal: stop cleanly. Second: leave now (children are killed on exit).
        if (++signals > 1) process.exit(ExitCode.Stopped);
        if (!o.json) process.stderr.write(`\n${sig}: stopping the loop (again to force)\n`);
        stop.abort();
      };
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
      const run = registerLocalRun(taskDir);
      try {
        const result = await runLoop({
          taskDir,
          maxIterations: o.maxIterations,
          model: o.model,
          iterationTimeoutMs: o.iterationTimeout * 1000,
          stallTimeoutMs: o.stallTimeout * 1000,
          budget: { maxCostUsd: o.maxCost, maxTokens: o.maxTokens },
          permissionPolicy: o.onPermission,
          takeGuidance: run.takeGuidance,
          run,
          signal: stop.signal,
          onEvent: (e) => {
            if (o.json) return printJson(e);
            const line = describeEvent(e);
            if (line) process.stdout.write(line + "\n");
          },
        });
        if (!o.json) process.stdout.write(summary(result) + "\n");
        process.exitCode = exitCodeForStatus(result.status);
      } catch (err) {
        throw asInvalidInput(err);
      } finally {
        run.close();
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      }
    });
}

interface RunFlags {
  maxIterations: number;
  model?: string;
  iterationTimeout: number;
  maxCost?: number;
  maxTokens?: number;
  stallTimeout: number;
  onPermission: "reject" | "allow";
  json?: boolean;
}
