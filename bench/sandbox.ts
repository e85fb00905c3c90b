// What the sandbox costs, side by side in one run: a loop's start to its
// first iteration and its iterations' wall time, sandboxed and not
// (alternating loops on the same scripted model), and a model request's
// latency from inside a sandbox through its bridge and egress proxy against
// the same client outside, straight to the model.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runLoop } from "../src/loop/engine.js";
import type { ScriptedModel } from "../src/model/scripted-model.js";
import { SupervisedProcess } from "../src/process/supervisor.js";
import { DEFAULT_LIMITS } from "../src/sandbox/limits.js";
import { openSandbox } from "../src/sandbox/sandbox.js";
import { makeRepo } from "../test/support/loop-fixtures.js";
import { summarize, table } from "./stats.js";

/** One 3-story loop: start to its first iteration, and each iteration's wall time after the first. */
async function loopTimes(model: ScriptedModel, home: string, sandboxed: boolean): Promise<{ start: number; iterations: number[] }> {
  const f = makeRepo(model.baseUrl);
  process.env.RALPH_HOME = home;
  const iterations: number[] = [];
  let start = 0;
  const t0 = performance.now();
  try {
    const r = await runLoop({
      taskDir: f.taskDir,
      maxIterations: 3,
      iterationTimeoutMs: 120_000,
      sandbox: { enabled: sandboxed },
      onEvent: (e) => {
        if (e.type === "iteration.started" && e.iteration === 1) start = performance.now() - t0;
        if (e.type === "iteration.ended" && e.iteration > 1) iterations.push(e.durationMs);
      },
    });
    if (r.status !== "completed") throw new Error(`bench loop ended ${r.status}: ${r.reason}`);
  } finally {
    f.cleanup();
  }
  return { start, iterations };
}

/** A client that times `n` keep-alive GETs of `url`, straight or through the proxy at HTTP_PROXY, and prints them. */
const CLIENT = `
const http = require("http");
const [url, n] = [process.argv[2], Number(process.argv[3])];
const proxy = process.env.HTTP_PROXY ? new URL(process.env.HTTP_PROXY) : undefined;
const target = new URL(url);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const get = () => new Promise((resolve, reject) => {
  const t0 = performance.now();
  const opts = proxy ? { host: proxy.hostname, port: proxy.port, path: url, agent } : { host: target.hostname, port: target.port, path: target.pathname, agent };
  http.get(opts, (res) => { res.resume(); res.on("end", () => resolve(performance.now() - t0)); }).on("error", reject);
});
(async () => {
  for (let i = 0; i < 20; i++) await get();
  const times = [];
  for (let i = 0; i < n; i++) times.push(await get());
  console.log("TIMES " + JSON.stringify(times));
})();
`;

async function requestTimes(dir: string, model: ScriptedModel, n: number, sandboxed: boolean, round: number): Promise<number[]> {
  const client = join(dir, "client.js");
  writeFileSync(client, CLIENT);
  const box = await openSandbox({
    enabled: sandboxed,
    name: `bench-${process.pid}-${round}`,
    dir: join(dir, `box-${round}-${sandboxed}`),
    worktree: dir,
    ro: [],
    allow: [{ host: "127.0.0.1", port: model.port }],
    limits: DEFAULT_LIMITS,
    onRefused: () => undefined,
  });
  let times: number[] | undefined;
  const launch = box.command([process.execPath, client, `${model.baseUrl}/models`, String(n)], 4096, {});
  const proc = await SupervisedProcess.spawn({
    name: "bench client",
    command: launch.command,
    args: launch.args,
    env: launch.env,
    cwd: dir,
    logFile: join(dir, "client.log"),
    onLine: (line) => {
      if (line.startsWith("TIMES ")) times = JSON.parse(line.slice(6)) as number[];
    },
  });
  await proc.exited;
  await box.close();
  if (!times) throw new Error(`the bench client printed no times; see ${join(dir, "client.log")}`);
  return times;
}

export async function runSandboxBench(opts: { model: ScriptedModel; home: string; samples: number; requests: number; log: (s: string) => void }) {
  opts.model.setScript({ kind: "ralph-agent" });
  const starts = { off: [] as number[], on: [] as number[] };
  const iterations = { off: [] as number[], on: [] as number[] };
  for (let i = 0; i < opts.samples; i++) {
    opts.log(`sandbox sample ${i + 1}/${opts.samples}: a 3-story loop unsandboxed, then one sandboxed`);
    for (const [key, sandboxed] of [["off", false], ["on", true]] as const) {
      const t = await loopTimes(opts.model, opts.home, sandboxed);
      starts[key].push(t.start);
      iterations[key].push(...t.iterations);
    }
  }
  opts.log(`model request latency: ${opts.requests} keep-alive requests per side, in rounds, from inside a sandbox and from outside`);
  const dir = mkdtempSync(join(tmpdir(), "ralph-bench-sandbox-"));
  const direct: number[] = [];
  const proxied: number[] = [];
  try {
    const rounds = 5;
    for (let r = 0; r < rounds; r++) {
      direct.push(...(await requestTimes(dir, opts.model, Math.ceil(opts.requests / rounds), false, r)));
      proxied.push(...(await requestTimes(dir, opts.model, Math.ceil(opts.requests / rounds), true, r)));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const s = {
    start: { unsandboxed: summarize(starts.off), sandboxed: summarize(starts.on) },
    iteration: { unsandboxed: summarize(iterations.off), sandboxed: summarize(iterations.on) },
    model_request: { direct: summarize(direct), through_proxy: summarize(proxied) },
  };
  return {
    ...s,
    tables: [
      "A loop's start to its first iteration (ms): unsandboxed vs sandboxed, alternating\n" + table([["unsandboxed", s.start.unsandboxed], ["sandboxed", s.start.sandboxed]], s.start.unsandboxed),
      "Iteration wall time (ms), iterations 2-3 of 3-story loops: unsandboxed vs sandboxed\n" + table([["unsandboxed", s.iteration.unsandboxed], ["sandboxed", s.iteration.sandboxed]], s.iteration.unsandboxed),
      "Model request latency (ms), keep-alive GET: straight from outside vs from inside a sandbox through its bridge and egress proxy\n" +
        table([["direct", s.model_request.direct], ["sandbox + proxy", s.model_request.through_proxy]], s.model_request.direct),
    ],
  };
}
