import type { Command } from "commander";
import { resolve } from "node:path";
import { allowNetHelp, allowNetOption, boundedInt, collectHosts, limitOptions, permissionPolicy, positiveAmount } from "../options.js";
import type { RunFlags } from "../actions/run.js";

export function registerRunCommand(program: Command): void {
  limitOptions(program.command("run"))
    .description("Run a Ralph loop locally on TASK_DIR/prd.json until every story passes")
    .argument("<task-dir>", "directory holding prd.json (inside a git repository)")
    .option("--max-iterations <n>", "iteration budget", boundedInt("--max-iterations", "maxIterations"), 10)
    .option("--model <provider/model>", "model for opencode (default: the repo's opencode config)")
    .option("--iteration-timeout <seconds>", "time limit per iteration", boundedInt("--iteration-timeout", "iterationTimeoutSeconds"), 1800)
    .option("--max-cost <usd>", "stop once the loop has cost this much (needs a model with a price in opencode's config)", positiveAmount("--max-cost"))
    .option("--max-tokens <n>", "stop once the loop has used this many tokens (input, output, reasoning and cache)", boundedInt("--max-tokens", "maxTokens"))
    .option("--stall-timeout <seconds>", "abort an iteration after this long with no activity from opencode", boundedInt("--stall-timeout", "stallTimeoutSeconds"), 300)
    .option("--on-permission <policy>", "answer opencode's permission requests: reject or allow (questions are always answered 'no human is available')", permissionPolicy, "reject")
    .option(allowNetOption, allowNetHelp, collectHosts)
    .option("--read-only <path>", "show this path read-only in the sandbox (repeatable), e.g. a toolchain in your home; its bin/ goes on PATH", (v: string, prev: string[] = []) => [...prev, resolve(v)])
    .option("--no-sandbox", "run the agent without a sandbox: it then reaches everything you can (files, keys, network, your other processes)")
    .option("--json", "print one JSON event per line")
    .action(async (taskDir: string, o: RunFlags) => (await import("../actions/run.js")).runLocal(taskDir, o));
}
