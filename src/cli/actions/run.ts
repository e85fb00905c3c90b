import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { openTask, runLoop } from "../../loop/engine.js";
import { registerLocalRun } from "../../loop/local-runs.js";
import { opencodeBinary } from "../../opencode/binary.js";
import { InvalidInputError } from "../../util/errors.js";
import { describeEvent, exitCodeForStatus, summary } from "../describe.js";
import { ExitCode } from "../exit-codes.js";
import { printJson } from "../output.js";
import { DEFAULT_LIMITS } from "../../sandbox/limits.js";
import { parseNetRule } from "../../sandbox/net-rules.js";
import { requireSandbox } from "../../sandbox/probe.js";
import { limitsOf } from "../options.js";

export interface RunFlags {
  maxIterations: number;
  model?: string;
  iterationTimeout: number;
  maxCost?: number;
  maxTokens?: number;
  stallTimeout: number;
  onPermission: "reject" | "allow";
  allowNet?: string[];
  readOnly?: string[];
  /** false with --no-sandbox. */
  sandbox: boolean;
  memory?: number;
  maxProcesses?: number;
  cpuWeight?: number;
  json?: boolean;
}

/** `ralph run`: a loop on this machine, until every story passes or a limit is reached. */
export async function runLocal(taskDirArg: string, o: RunFlags): Promise<void> {
  const taskDir = resolve(taskDirArg);
  const prdFile = join(taskDir, "prd.json");
  if (!existsSync(prdFile)) throw new InvalidInputError(`no prd.json in ${taskDir}: create one, or pass the directory that holds it`);
  await openTask(taskDir);
  // Before the loop touches the repository (it switches branches): fail closed without a sandbox.
  opencodeBinary();
  if (o.sandbox) await requireSandbox();
  for (const p of o.readOnly ?? []) if (!existsSync(p)) throw new InvalidInputError(`--read-only ${p}: no such file or directory`);
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
      sandbox: { enabled: o.sandbox, allowNet: (o.allowNet ?? []).map(parseNetRule), limits: { ...DEFAULT_LIMITS, ...limitsOf(o) }, readOnly: o.readOnly },
      signal: stop.signal,
      onEvent: (e) => {
        if (o.json) return printJson(e);
        const line = describeEvent(e);
        if (line) process.stdout.write(line + "\n");
      },
    });
    if (!o.json) process.stdout.write(summary(result) + "\n");
    process.exitCode = exitCodeForStatus(result.status);
  } finally {
    run.close();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
