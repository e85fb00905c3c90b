// A daemon restart is a non-event: a stop of ralphd (what systemctl restart
// and every upgrade do) leaves its loops running, and the next ralphd (here
// another build of it) re-adopts them, counting what the interrupted
// iteration used; `ralphd stop --loops` ends them on purpose, and loops left
// without a daemon for too long stop themselves. Each ending nobody asked for
// is recorded and notified.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startScriptedModel, type ScriptedModel } from "../../src/model/scripted-model.js";
import { pidAlive } from "../../src/process/supervisor.js";
import { waitFor } from "../../src/util/wait.js";
import { startTestNetwork } from "../support/ziti-network.js";
import { makeProject, offerScriptedModel, ralph, ralphdScript, setDaemonConfig, startRalphd, stopRalphd } from "../support/daemon-harness.js";
import { gitEnv, TOKENS_PER_ANSWER } from "../support/loop-fixtures.js";
import { eventsOf } from "../support/control.js";
import { startReceiver } from "../support/http-receiver.js";

let network: Awaited<ReturnType<typeof startTestNetwork>>;
let model: ScriptedModel;
let daemon: Awaited<ReturnType<typeof startRalphd>> | undefined;
let home: string;
let root: string;
let project: { repo: string; origin: string };
let receiver: Awaited<ReturnType<typeof startReceiver>>;
/** A second build of ralphd: this checkout's, installed elsewhere with the next version number, as an upgrade would. */
let nextBuild: string;
const NEXT_VERSION = "0.1.1-next";
const ANSWER = TOKENS_PER_ANSWER.input + TOKENS_PER_ANSWER.output + TOKENS_PER_ANSWER.reasoning + TOKENS_PER_ANSWER.cacheRead;

before(async () => {
  Object.assign(process.env, gitEnv);
  root = mkdtempSync(join(tmpdir(), "ralph-restart-"));
  network = await startTestNetwork("ralph-restart");
  home = network.home;
  model = await startScriptedModel({ script: { kind: "ralph-agent" } });
  receiver = await startReceiver();
  offerScriptedModel(home, model.baseUrl, { maxConcurrentLoops: 2, notify: [{ kind: "webhook", url: `${receiver.url}/hook` }] });
  project = makeProject(join(root, "project"), ["ralph/upgrade", "ralph/ended", "ralph/orphan"]);
  nextBuild = join(root, "next");
  cpSync(join(process.cwd(), "dist"), join(nextBuild, "dist"), { recursive: true });
  const pkg = JSON.parse(readFileSync(join(process.cwd(), "package.json"), "utf8")) as { version: string };
  writeFileSync(join(nextBuild, "package.json"), JSON.stringify({ ...pkg, version: NEXT_VERSION }));
  symlinkSync(join(process.cwd(), "node_modules"), join(nextBuild, "node_modules"));
  cpSync(join(process.cwd(), "tools"), join(nextBuild, "tools"), { recursive: true });
  daemon = await startRalphd(home);
});

after(async () => {
  await stopRalphd(daemon);
  await model?.close();
  await receiver?.close();
  await network?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

async function start(branch: string): Promise<string> {
  execFileSync("git", ["switch", "-q", branch], { cwd: project.repo });
  const r = await ralph(home, ["start", "task"], project.repo);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

const statusOf = async (id: string) => JSON.parse((await ralph(home, ["status", id, "--json"])).stdout) as { status: string; reason: string | null; usage: { tokens: Record<string, number> } };

/** `ralphd stop [...]` of this home, to its end. */
function ralphdStop(...args: string[]): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [ralphdScript, "stop", ...args], { env: { ...process.env, RALPH_HOME: home }, stdio: ["ignore", "pipe", "inherit"] });
    let stdout = "";
    c.stdout!.on("data", (d: Buffer) => (stdout += d));
    c.on("exit", (code) => resolve({ code, stdout }));
  });
}

/** The loop's sandbox (its launcher's pid), from its opencode.started event. */
const sandboxOf = async (id: string) => {
  const e = (await eventsOf(id)).find((x) => x.type === "opencode.started");
  assert.ok(e?.type === "opencode.started");
  return e.pid;
};

const notified = (id: string) => receiver.requests.filter((r) => r.body.includes(id)).map((r) => JSON.parse(r.body) as { kind: string; message: string });

test("ralphd stop leaves a running loop running; another build of ralphd re-adopts it, counts what the interrupted iteration used, and the loop completes", async () => {
  // The first answer (the story's tool call) comes, the second hangs: ralphd stops in the middle of iteration 1.
  model.setScript({ kind: "ralph-agent", hangAfterTool: true });
  const before = model.requestCount();
  const id = await start("ralph/upgrade");
  await waitFor(() => model.requestCount() >= before + 2, { what: "iteration 1's tool call, and the request after it", timeoutMs: 60_000 });
  const sandbox = await sandboxOf(id);
  const stopped = await ralphdStop();
  assert.equal(stopped.code, 0);
  assert.match(stopped.stdout, /stopped; its loops were left running for the next ralphd to re-adopt/);
  assert.ok(pidAlive(sandbox), "the loop's sandbox runs on without a daemon");
  daemon = undefined;
  // The next build: the same home, another install and version of ralphd.
  model.setScript({ kind: "ralph-agent" });
  daemon = await startRalphd(home, {}, join(nextBuild, "dist", "cli", "ralphd.js"));
  assert.match(daemon.log(), new RegExp(`re-adopted running loops: ${id}`));
  const health = JSON.parse((await ralph(home, ["health", "--json"])).stdout) as { versions: { ralph: string } };
  assert.equal(health.versions.ralph, NEXT_VERSION, "the upgraded build answers");
  await waitFor(async () => (await statusOf(id)).status === "completed", { what: "the re-adopted loop to complete", timeoutMs: 120_000, intervalMs: 500 });
  const done = await statusOf(id);
  const events = await eventsOf(id);
  assert.equal(events.filter((e) => e.type === "opencode.started").length, 1, "the same sandbox carried on");
  assert.ok(!events.some((e) => e.type === "loop.status" && e.status === "stopped"), "nobody stopped it");
  // Iteration 1 made its tool call (one answer) before the restart; iteration 2 did the second story (two answers).
  const tokens = done.usage.tokens;
  assert.equal(tokens.input! + tokens.output! + tokens.reasoning! + tokens.cacheRead!, 3 * ANSWER, "what the interrupted iteration used is counted, as in an uninterrupted loop");
  const pushed = events.filter((e) => e.type === "loop.pushed").map((e) => e.type === "loop.pushed" && e.commit);
  assert.equal(new Set(pushed).size, pushed.length, "each commit is reported pushed once");
});

test("ralphd stop --loops ends every running loop as \"daemon shutdown\", and the owner is notified", async () => {
  model.setScript({ kind: "hang" });
  const id = await start("ralph/ended");
  const sandbox = await sandboxOf(id).catch(async () => waitFor(() => sandboxOf(id).catch(() => undefined), { what: "the loop's sandbox", timeoutMs: 60_000 }));
  const stopped = await ralphdStop("--loops", "--json");
  assert.equal(stopped.code, 0);
  assert.deepEqual({ ...JSON.parse(stopped.stdout), pid: 0 }, { pid: 0, stopped: true, loops: "ended" });
  daemon = undefined;
  assert.equal(pidAlive(sandbox), false, "its sandbox went with it");
  await waitFor(() => notified(id).find((n) => n.kind === "shutdown"), { what: "the shutdown notification", timeoutMs: 10_000 });
  daemon = await startRalphd(home);
  const s = await statusOf(id);
  assert.equal(s.status, "stopped");
  assert.equal(s.reason, "daemon shutdown");
});

test("loops left without a daemon stop themselves after orphanStopSeconds; the next ralphd records why and notifies", async () => {
  setDaemonConfig(home, { orphanStopSeconds: 4 });
  await stopRalphd(daemon);
  daemon = await startRalphd(home);
  model.setScript({ kind: "hang" });
  const id = await start("ralph/orphan");
  const sandbox = await waitFor(() => sandboxOf(id).catch(() => undefined), { what: "the loop's sandbox", timeoutMs: 60_000 });
  assert.equal((await ralphdStop()).code, 0);
  daemon = undefined;
  await waitFor(() => !pidAlive(sandbox), { what: "the orphaned sandbox to stop itself", timeoutMs: 30_000, intervalMs: 250 });
  daemon = await startRalphd(home);
  const s = await statusOf(id);
  assert.equal(s.status, "stopped");
  assert.equal(s.reason, "no ralphd for over 4 s: the loop stopped itself");
  await waitFor(() => notified(id).find((n) => n.kind === "shutdown" && /stopped itself/.test(n.message)), { what: "the notification", timeoutMs: 10_000 });
  setDaemonConfig(home, { orphanStopSeconds: undefined });
});
