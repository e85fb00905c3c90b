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
import type { LoopEvent } from "../../src/loop/events.js";
import { startScriptedModel, type ScriptedModel } from "../../src/model/scripted-model.js";
import { pidAlive, signalGroup } from "../../src/process/supervisor.js";
import { waitFor } from "../../src/util/wait.js";
import { ExitCode } from "../../src/cli/exit-codes.js";
import { git, gitEnv, makeRepo, threeStoryPrd, type Fixture } from "../support/loop-fixtures.js";

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

function fixture(prd?: unknown): Fixture {
  const f = makeRepo(model.baseUrl, prd);
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

test("SIGINT to ralph run stops the loop and leaves no opencode process behind", async () => {
  model.setScript({ kind: "hang" });
  const f = fixture();
  const child = spawn(process.execPath, [cli, "run", f.taskDir, "--json"], { env: { ...process.env, RALPH_HOME: f.home }, stdio: ["ignore", "pipe", "pipe"] });
  const events: LoopEvent[] = [];
  createInterface({ input: child.stdout! }).on("line", (l) => events.push(JSON.parse(l) as LoopEvent));
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
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
      const server = await startOpencodeServer({ cwd: repoDir, stateDir: join(f.home, "opencode"), logFile: join(f.home, "opencode.log") });
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
