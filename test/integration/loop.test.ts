// The Ralph loop end to end: real `opencode serve`, driven by the scripted
// OpenAI-compatible model, making real tool calls and commits in a temp repo.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { runLoop } from "../../src/loop/engine.js";
import { startOpencodeServer } from "../../src/opencode/server.js";
import { DEFAULT_LIMITS } from "../../src/sandbox/limits.js";
import type { LoopEvent } from "../../src/loop/events.js";
import { SCRIPTED_QUESTION, startScriptedModel, type ScriptedModel } from "../../src/model/scripted-model.js";
import { NO_HUMAN } from "../../src/opencode/session.js";
import type { Usage } from "../../src/loop/usage.js";
import { pidAlive, signalGroup } from "../../src/process/supervisor.js";
import { waitFor } from "../../src/util/wait.js";
import { ExitCode } from "../../src/cli/exit-codes.js";
import { ralph } from "../support/daemon-harness.js";
import { COST_PER_ANSWER, TEST_PRICE, TOKENS_PER_ANSWER, git, gitEnv, makeRepo, threeStoryPrd, type Fixture } from "../support/loop-fixtures.js";

let model: ScriptedModel;
const fixtures: Fixture[] = [];
const startedPids: number[] = [];

before(async () => {
  model = await startScriptedModel({ script: { kind: "ralph-agent" } });
});

after(async () => {
  for (const pid of startedPids) signalGroup(pid, "SIGKILL");
  await model.close();
  for (const f of fixtures) f.cleanup();
});

function fixture(prd?: unknown, opencode?: Parameters<typeof makeRepo>[2]): Fixture {
  const f = makeRepo(model.baseUrl, prd, opencode);
  fixtures.push(f);
  process.env.RALPH_HOME = f.home;
  Object.assign(process.env, gitEnv);
  return f;
}

function collect(): { events: LoopEvent[]; onEvent: (e: LoopEvent) => void } {
  const events: LoopEvent[] = [];
  return {
    events,
    onEvent: (e) => {
      events.push(e);
      if (e.type === "opencode.started") startedPids.push(e.pid);
    },
  };
}

test("a 3-story PRD completes in 3 iterations with 3 commits on the PRD branch", async () => {
  model.setScript({ kind: "ralph-agent" });
  const f = fixture();
  const { events, onEvent } = collect();
  const result = await runLoop({ taskDir: f.taskDir, maxIterations: 6, iterationTimeoutMs: 120_000, onEvent });
  assert.equal(result.status, "completed");
  assert.equal(result.iterations, 3);
  assert.deepEqual([result.passed, result.total], [3, 3]);
  assert.equal(git(f.repo, "rev-parse", "--abbrev-ref", "HEAD"), "ralph/test");
  const subjects = git(f.repo, "log", "--format=%s", "main..ralph/test").split("\n");
  assert.deepEqual(subjects, ["feat: [S3] - Third story", "feat: [S2] - Second story", "feat: [S1] - First story"]);
  const prd = JSON.parse(readFileSync(join(f.taskDir, "prd.json"), "utf8"));
  assert.ok(prd.userStories.every((s: { passes: boolean }) => s.passes));
  assert.deepEqual(prd.extra, { keptBy: "the loop" });
  const ended = events.filter((e) => e.type === "iteration.ended");
  assert.deepEqual(ended.map((e) => e.type === "iteration.ended" && [e.storyId, e.outcome, e.committed]), [
    ["S1", "progress", true],
    ["S2", "progress", true],
    ["S3", "progress", true],
  ]);
  assert.ok(events.some((e) => e.type === "tool" && e.tool === "bash" && e.status === "completed"));
  const progress = readFileSync(join(f.taskDir, "progress.txt"), "utf8");
  assert.equal(progress.match(/^\[ralph\] .* \| iteration \d+ \| story S\d \| outcome progress/gm)?.length, 3);
  const last = events.at(-1);
  assert.equal(last?.type, "run.ended");
  const server = events.find((e) => e.type === "opencode.started");
  assert.ok(server && server.type === "opencode.started" && !pidAlive(server.pid), "opencode is stopped when the loop returns");
});

test("a model that never finishes ends exhausted at the iteration limit", async () => {
  model.setScript({ kind: "idle" });
  const f = fixture();
  const { events, onEvent } = collect();
  const result = await runLoop({ taskDir: f.taskDir, maxIterations: 2, iterationTimeoutMs: 120_000, onEvent });
  assert.equal(result.status, "exhausted");
  assert.equal(result.iterations, 2);
  assert.equal(result.passed, 0);
  assert.deepEqual(events.filter((e) => e.type === "iteration.ended").map((e) => e.type === "iteration.ended" && e.outcome), ["no-progress", "no-progress"]);
});

test("a model that errors ends failed after consecutive failures with backoff", async () => {
  model.setScript({ kind: "error", status: 400 });
  const f = fixture();
  const { events, onEvent } = collect();
  const result = await runLoop({ taskDir: f.taskDir, maxIterations: 10, maxConsecutiveFailures: 2, backoffBaseMs: 100, iterationTimeoutMs: 120_000, onEvent });
  assert.equal(result.status, "failed");
  assert.equal(result.iterations, 2);
  assert.match(result.reason ?? "", /2 consecutive failed iterations.*scripted model error/);
  const ended = events.filter((e) => e.type === "iteration.ended");
  assert.ok(ended.every((e) => e.type === "iteration.ended" && e.outcome === "failed" && /scripted model error/.test(e.error ?? "")));
});

test("opencode killed mid-iteration is restarted and the failure is counted", async () => {
  model.setScript({ kind: "hang" });
  const f = fixture();
  const { events, onEvent } = collect();
  let killed = false;
  const result = await runLoop({
    taskDir: f.taskDir,
    maxIterations: 6,
    backoffBaseMs: 50,
    iterationTimeoutMs: 120_000,
    onEvent: (e) => {
      onEvent(e);
      if (e.type === "iteration.started" && !killed) {
        killed = true;
        const before = model.requestCount();
        const server = events.find((x) => x.type === "opencode.started");
        void waitFor(() => model.requestCount() > before, { what: "the model request", timeoutMs: 60_000 }).then(() => {
          if (server?.type === "opencode.started") signalGroup(server.pid, "SIGKILL");
          model.setScript({ kind: "ralph-agent" });
        });
      }
    },
  });
  assert.equal(result.status, "completed");
  assert.equal(result.iterations, 4);
  const ended = events.filter((e) => e.type === "iteration.ended");
  assert.equal(ended[0]?.type === "iteration.ended" && ended[0].outcome, "failed");
  assert.ok(events.some((e) => e.type === "opencode.restarted"));
  assert.equal(events.filter((e) => e.type === "opencode.started").length, 2);
});

const cli = join(process.cwd(), "dist", "cli", "ralph.js");

/** `ralph run --json` as a child, its events collected as they come. */
function spawnRun(f: Fixture) {
  const child = spawn(process.execPath, [cli, "run", f.taskDir, "--json"], { env: { ...process.env, RALPH_HOME: f.home }, stdio: ["ignore", "pipe", "pipe"] });
  const events: LoopEvent[] = [];
  createInterface({ input: child.stdout! }).on("line", (l) => events.push(JSON.parse(l) as LoopEvent));
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  return { child, events, exited };
}

test("SIGINT to ralph run stops the loop and leaves no opencode process behind", async () => {
  model.setScript({ kind: "hang" });
  const f = fixture();
  const { child, events, exited } = spawnRun(f);
  const before = model.requestCount();
  const server = await waitFor(() => events.find((e) => e.type === "opencode.started"), { what: "opencode to start", timeoutMs: 60_000 });
  assert.ok(server.type === "opencode.started");
  startedPids.push(server.pid);
  await waitFor(() => model.requestCount() > before, { what: "the iteration's model request", timeoutMs: 60_000 });
  child.kill("SIGINT");
  assert.equal(await exited, ExitCode.Stopped);
  assert.equal(pidAlive(server.pid), false, "opencode must not outlive ralph run");
  const end = events.at(-1);
  assert.ok(end?.type === "run.ended" && end.status === "stopped");
});

test("a broken PRD exits with the invalid-input code and names the field", async () => {
  const prd = threeStoryPrd();
  (prd.userStories[1] as Record<string, unknown>).title = 42;
  const f = fixture(prd);
  const child = spawn(process.execPath, [cli, "run", f.taskDir], { env: { ...process.env, RALPH_HOME: f.home }, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
  assert.equal(code, ExitCode.InvalidInput);
  assert.match(stderr, /\$\.userStories\[1\]\.title/);
  assert.match(stderr, /prd\.json/);
  // Nothing was started or changed.
  assert.equal(git(f.repo, "rev-parse", "--abbrev-ref", "HEAD"), "main");
  writeFileSync(join(f.taskDir, "prd.json"), "{ not json");
  const again = spawn(process.execPath, [cli, "run", f.taskDir], { env: { ...process.env, RALPH_HOME: f.home }, stdio: ["ignore", "ignore", "pipe"] });
  let err2 = "";
  again.stderr!.on("data", (d: Buffer) => (err2 += d.toString()));
  assert.equal(await new Promise((r) => again.on("exit", (c) => r(c))), ExitCode.InvalidInput);
  assert.match(err2, /not valid JSON/);
});

test("a stop that arrives while opencode is starting ends the loop at once, not at the iteration timeout", async () => {
  model.setScript({ kind: "hang" });
  const f = fixture();
  const { events, onEvent } = collect();
  const stop = new AbortController();
  const result = await runLoop({
    taskDir: f.taskDir,
    maxIterations: 3,
    iterationTimeoutMs: 30 * 60_000,
    signal: stop.signal,
    onEvent,
    startServer: async (repoDir) => {
      const server = await startOpencodeServer({
        sandbox: { enabled: true, name: "stop-test", dir: join(f.home, "box"), worktree: repoDir, ro: [], allow: [], limits: DEFAULT_LIMITS, onRefused: () => undefined },
        logFile: join(f.home, "opencode.log"),
      });
      stop.abort();
      return server;
    },
  });
  assert.equal(result.status, "stopped");
  const server = events.find((e) => e.type === "opencode.started");
  assert.ok(server?.type === "opencode.started" && !pidAlive(server.pid), "opencode is stopped with the loop");
});

test("the loop refuses to switch a dirty working tree to the PRD branch and changes nothing", async () => {
  const f = fixture();
  writeFileSync(join(f.repo, "README.md"), "uncommitted edit\n");
  await assert.rejects(runLoop({ taskDir: f.taskDir, maxIterations: 1, iterationTimeoutMs: 60_000 }), /uncommitted changes; commit or stash them before the loop switches to branch ralph\/test/);
  assert.equal(git(f.repo, "rev-parse", "--abbrev-ref", "HEAD"), "main");
  assert.equal(readFileSync(join(f.repo, "README.md"), "utf8"), "uncommitted edit\n");
  const r = spawnSync(process.execPath, [cli, "run", f.taskDir], { env: { ...process.env, RALPH_HOME: f.home } });
  assert.equal(r.status, ExitCode.InvalidInput);
  assert.match(r.stderr.toString(), /uncommitted changes/);
});

test("a missing opencode binary exits as unavailable, says how to fix it, and changes nothing", () => {
  const f = fixture();
  const r = spawnSync(process.execPath, [cli, "run", f.taskDir], { env: { ...process.env, RALPH_HOME: f.home, RALPH_OPENCODE_BIN: join(f.root, "no-opencode") } });
  assert.equal(r.status, ExitCode.Unavailable);
  assert.match(r.stderr.toString(), /RALPH_OPENCODE_BIN=.*no-opencode is not an executable file; fix the path or unset it/);
  assert.equal(git(f.repo, "rev-parse", "--abbrev-ref", "HEAD"), "main");
});

/** What `answers` scripted answers use, as opencode counts them; cost null without a price. */
function expectedUsage(answers: number, priced: boolean): Usage {
  const t = TOKENS_PER_ANSWER;
  return {
    tokens: { input: t.input * answers, output: t.output * answers, reasoning: t.reasoning * answers, cacheRead: t.cacheRead * answers, cacheWrite: t.cacheWrite * answers },
    costUsd: priced ? COST_PER_ANSWER * answers : null,
  };
}

/** Usage equal to the expected one: tokens exactly, cost to the last rounding bit. */
function assertUsage(actual: Usage | undefined, expected: Usage, what: string): void {
  assert.ok(actual, `${what}: no usage`);
  assert.deepEqual(actual.tokens, expected.tokens, `${what}: tokens`);
  if (expected.costUsd === null) assert.equal(actual.costUsd, null, `${what}: cost must be unknown`);
  else assert.ok(actual.costUsd !== null && Math.abs(actual.costUsd - expected.costUsd) < 1e-12, `${what}: cost ${actual.costUsd}, expected ${expected.costUsd}`);
}

test("every iteration's tokens and cost are counted exactly from opencode's messages, per iteration and per loop", async () => {
  model.setScript({ kind: "ralph-agent" });
  const f = fixture(undefined, { price: TEST_PRICE });
  const { events, onEvent } = collect();
  const result = await runLoop({ taskDir: f.taskDir, maxIterations: 5, iterationTimeoutMs: 120_000, onEvent });
  assert.equal(result.status, "completed");
  const ended = events.filter((e) => e.type === "iteration.ended");
  assert.equal(ended.length, 3);
  // Each iteration is two answers: the bash call, then the report.
  ended.forEach((e, i) => {
    assertUsage(e.usage, expectedUsage(2, true), `iteration ${i + 1}`);
    assertUsage(e.totalUsage, expectedUsage(2 * (i + 1), true), `loop after iteration ${i + 1}`);
  });
  assertUsage(result.usage, expectedUsage(6, true), "the loop");
  const end = events.at(-1);
  assert.ok(end?.type === "run.ended");
  assertUsage(end.usage, expectedUsage(6, true), "run.ended");
});

test("a model without a price still has its tokens counted, and its cost is unknown, never 0", async () => {
  model.setScript({ kind: "ralph-agent" });
  const f = fixture();
  // Not spawnSync: the scripted model answers from this process.
  const r = await ralph(f.home, ["run", f.taskDir, "--max-iterations", "1"]);
  assert.equal(r.code, ExitCode.Exhausted, r.stderr);
  const out = r.stdout;
  assert.match(out, /progress in [\d.]+s, 1\/3 stories pass, 2400 tokens, cost unknown \(loop: 2400 tokens, cost unknown\)/);
  assert.match(out, /exhausted: 1\/3 stories pass after 1 iteration\(s\) in [\d.]+s, 2400 tokens, cost unknown/);
});

test("--max-tokens ends the loop with the budget status and exit code once an iteration reaches it", async () => {
  model.setScript({ kind: "ralph-agent" });
  const f = fixture(undefined, { price: TEST_PRICE });
  const r = await ralph(f.home, ["run", f.taskDir, "--max-tokens", "4800", "--json"]);
  assert.equal(r.code, ExitCode.Budget, r.stderr);
  const events = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as LoopEvent);
  const budget = events.find((e) => e.type === "loop.budget");
  assert.deepEqual(budget && { ...budget, time: "" }, { type: "loop.budget", limit: "tokens", max: 4800, used: 4800, duringIteration: budget?.type === "loop.budget" && budget.duringIteration, time: "" });
  const end = events.at(-1);
  assert.ok(end?.type === "run.ended");
  assert.equal(end.status, "budget");
  assert.equal(end.iterations, 2);
  assert.equal(end.reason, "token budget reached: 4800 of 4800 tokens");
  assert.equal(git(f.repo, "log", "--format=%s", "-1", "ralph/test"), "feat: [S2] - Second story", "the work done before the limit is kept");
});

test("a budget passed in the middle of a turn aborts it at once instead of waiting for the agent", async () => {
  // The agent spends 1200 tokens on its first answer, then would never answer again.
  model.setScript({ kind: "ralph-agent", hangAfterTool: true });
  const f = fixture(undefined, { price: TEST_PRICE });
  const { events, onEvent } = collect();
  const result = await runLoop({ taskDir: f.taskDir, maxIterations: 3, iterationTimeoutMs: 10 * 60_000, stallTimeoutMs: 10 * 60_000, budget: { maxTokens: 1000 }, onEvent });
  assert.equal(result.status, "budget");
  assert.equal(result.iterations, 1);
  const ended = events.find((e) => e.type === "iteration.ended");
  assert.ok(ended?.type === "iteration.ended");
  assert.equal(ended.outcome, "budget");
  assertUsage(ended.usage, expectedUsage(1, true), "the cut-short iteration");
  const budget = events.find((e) => e.type === "loop.budget");
  assert.ok(budget?.type === "loop.budget" && budget.duringIteration && budget.used === 1200);
});

test("a cost budget on a model without a price stops at the first spend and says why", async () => {
  model.setScript({ kind: "ralph-agent" });
  const f = fixture();
  const result = await runLoop({ taskDir: f.taskDir, maxIterations: 3, iterationTimeoutMs: 120_000, budget: { maxCostUsd: 5 } });
  assert.equal(result.status, "budget");
  assert.equal(result.iterations, 1);
  assert.match(result.reason ?? "", /the cost budget of \$5\.00 cannot be kept: the model has no price in opencode's config/);
});

test("a question from the agent is answered at once on nobody's behalf, recorded, and the loop carries on", async () => {
  model.setScript({ kind: "ralph-agent", askFirst: true });
  const f = fixture();
  const { events, onEvent } = collect();
  const result = await runLoop({ taskDir: f.taskDir, maxIterations: 4, iterationTimeoutMs: 120_000, stallTimeoutMs: 60_000, onEvent });
  assert.equal(result.status, "completed");
  assert.equal(result.iterations, 3);
  const asked = events.filter((e) => e.type === "loop.asked");
  assert.deepEqual(
    asked.map((e) => e.type === "loop.asked" && [e.iteration, e.kind, e.text, e.answer]),
    [1, 2, 3].map((i) => [i, "question", SCRIPTED_QUESTION, NO_HUMAN]),
  );
});

test("a permission the repository's config sets to ask is answered at once by the policy: rejected by default, allowed on request", async () => {
  model.setScript({ kind: "ralph-agent" });
  // A "*" rule first lets the repo's "ask" win over the loop's allow-everything default.
  const extra = { permission: { "*": "allow", bash: "ask" } };
  const rejected = fixture(undefined, { extra });
  const a = collect();
  const r1 = await runLoop({ taskDir: rejected.taskDir, maxIterations: 1, iterationTimeoutMs: 120_000, stallTimeoutMs: 60_000, onEvent: a.onEvent });
  assert.equal(r1.status, "exhausted");
  const asked = a.events.filter((e) => e.type === "loop.asked");
  assert.equal(asked.length, 1);
  assert.ok(asked[0]?.type === "loop.asked" && asked[0].kind === "permission" && asked[0].text.startsWith("bash node <<'RALPH_SCRIPTED_EOF'"));
  assert.equal(asked[0].answer, `rejected: ${NO_HUMAN}`);
  const ended = a.events.find((e) => e.type === "iteration.ended");
  assert.ok(ended?.type === "iteration.ended" && ended.outcome === "no-progress" && !ended.committed, "the command did not run, and the turn went on to its end");

  const allowed = fixture(undefined, { extra });
  const b = collect();
  const r2 = await runLoop({ taskDir: allowed.taskDir, maxIterations: 1, iterationTimeoutMs: 120_000, stallTimeoutMs: 60_000, permissionPolicy: "allow", onEvent: b.onEvent });
  assert.equal(r2.passed, 1);
  assert.deepEqual(b.events.filter((e) => e.type === "loop.asked").map((e) => e.type === "loop.asked" && [e.kind, e.answer]), [["permission", "allowed once"]]);
});

test("an iteration with no activity from opencode is aborted as stalled, long before its timeout", async () => {
  model.setScript({ kind: "hang" });
  const f = fixture();
  const { events, onEvent } = collect();
  const result = await runLoop({ taskDir: f.taskDir, maxIterations: 3, maxConsecutiveFailures: 1, iterationTimeoutMs: 30 * 60_000, stallTimeoutMs: 2000, onEvent });
  assert.equal(result.status, "failed");
  assert.equal(result.iterations, 1);
  const stalled = events.find((e) => e.type === "loop.stalled");
  assert.ok(stalled?.type === "loop.stalled" && stalled.iteration === 1 && stalled.idleSeconds >= 2);
  const ended = events.find((e) => e.type === "iteration.ended");
  assert.ok(ended?.type === "iteration.ended");
  assert.equal(ended.outcome, "stalled");
  assert.match(ended.error ?? "", /stalled: no activity from opencode for \d+s/);
});

test("ralph say gives a running local loop guidance that the next iteration's prompt includes once", async () => {
  model.setScript({ kind: "hang" });
  const f = fixture();
  const { events, exited } = spawnRun(f);
  const started = await waitFor(() => events.find((e) => e.type === "run.started"), { what: "the run to start", timeoutMs: 60_000 });
  assert.ok(started.type === "run.started" && started.runId);
  const server = await waitFor(() => events.find((e) => e.type === "opencode.started"), { what: "opencode to start", timeoutMs: 60_000 });
  if (server.type === "opencode.started") startedPids.push(server.pid);
  const before = model.prompts().length;
  await waitFor(() => model.prompts().length > before, { what: "the first iteration's prompt", timeoutMs: 60_000 });
  const say = await ralph(f.home, ["say", started.runId, "Use tabs, not spaces."]);
  assert.equal(say.code, 0, say.stderr);
  assert.match(say.stderr, new RegExp(`queued for the next iteration of local run ${started.runId}`));
  model.setScript({ kind: "ralph-agent" });
  assert.equal(await exited, 0);
  const withGuidance = model.prompts().filter((p) => p.includes("Use tabs, not spaces."));
  assert.equal(withGuidance.length, 1, "the guidance is given once");
  assert.ok(!model.prompts()[before]!.includes("Use tabs"), "not to the iteration that was already running");
  const guidance = events.filter((e) => e.type === "loop.guidance");
  assert.equal(guidance.length, 1);
  assert.ok(guidance[0]?.type === "loop.guidance" && guidance[0].iteration >= 2 && guidance[0].text === "Use tabs, not spaces.");
  const late = await ralph(f.home, ["say", started.runId, "too late"]);
  assert.notEqual(late.code, 0, "an ended run takes no guidance");
});
