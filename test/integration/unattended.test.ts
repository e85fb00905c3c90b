// Unattended loops on a real ralphd through the overlay: cost accounting in
// the daemon's state, budgets and their ceilings, questions answered on
// nobody's behalf, steering with 'ralph say', and notifications received by
// a local webhook and ntfy-style receiver.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LoopSummary } from "../../src/contract/schemas.js";
import { SCRIPTED_QUESTION, startScriptedModel, type ScriptedModel } from "../../src/model/scripted-model.js";
import { NO_HUMAN } from "../../src/opencode/session.js";
import { waitFor } from "../../src/util/wait.js";
import { ExitCode } from "../../src/cli/exit-codes.js";
import { startTestNetwork } from "../support/ziti-network.js";
import { makeProject, ralph, offerScriptedModel, setDaemonConfig, startRalphd, stopRalphd } from "../support/daemon-harness.js";
import { COST_PER_ANSWER, TEST_PRICE, TOKENS_PER_ANSWER, gitEnv } from "../support/loop-fixtures.js";
import { deadPort, startReceiver, type Received } from "../support/http-receiver.js";

let network: Awaited<ReturnType<typeof startTestNetwork>>;
let model: ScriptedModel;
let daemon: Awaited<ReturnType<typeof startRalphd>>;
let receiver: Awaited<ReturnType<typeof startReceiver>>;
let home: string;
let project: { repo: string; origin: string };
let projectRoot: string;
const NTFY_TOKEN = "tk_unattended_secret";

before(async () => {
  Object.assign(process.env, gitEnv);
  network = await startTestNetwork("ralph-unattended");
  home = network.home;
  model = await startScriptedModel({ script: { kind: "ralph-agent" } });
  receiver = await startReceiver();
  offerScriptedModel(
    home,
    model.baseUrl,
    {
      maxConcurrentLoops: 2,
      budget: { maxCostUsd: 1 },
      notify: [
        { kind: "webhook", name: "hook", url: `${receiver.url}/hook` },
        { kind: "ntfy", url: `${receiver.url}/ralph-topic`, token: NTFY_TOKEN, events: ["completed", "budget", "asked"] },
      ],
    },
    TEST_PRICE,
  );
  projectRoot = mkdtempSync(join(tmpdir(), "ralph-unattended-"));
  project = makeProject(projectRoot, ["ralph/cost", "ralph/budget", "ralph/ask", "ralph/say", "ralph/ceiling"]);
  daemon = await startRalphd(home);
});

after(async () => {
  await stopRalphd(daemon);
  await model?.close();
  await receiver?.close();
  await network?.stop();
  if (projectRoot) rmSync(projectRoot, { recursive: true, force: true });
});

const gitIn = (...args: string[]) => execFileSync("git", args, { cwd: project.repo }).toString().trim();

async function startLoop(branch: string, ...flags: string[]): Promise<string> {
  gitIn("switch", "-q", branch);
  const r = await ralph(home, ["start", "task", ...flags], project.repo);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

async function status(id: string): Promise<LoopSummary> {
  const r = await ralph(home, ["status", id, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as LoopSummary;
}

const ended = (id: string) => waitFor(async () => ((s) => (["starting", "running"].includes(s.status) ? undefined : s))(await status(id)), { what: `loop ${id} to end`, timeoutMs: 120_000, intervalMs: 500 });

/** What the receiver got at `path` about loop `id`. */
const received = (path: string, id: string): Received[] => receiver.requests.filter((r) => r.path === path && (r.body.includes(id) || r.headers.title?.toString().includes(id)));

test("a loop's tokens and cost are kept by the daemon, shown by status and ls, and survive a restart; its end is notified", async () => {
  model.setScript({ kind: "ralph-agent" });
  const id = await startLoop("ralph/cost");
  const done = await ended(id);
  assert.equal(done.status, "completed");
  // Two stories, two answers each.
  const t = TOKENS_PER_ANSWER;
  assert.deepEqual(done.usage.tokens, { input: 4 * t.input, output: 4 * t.output, reasoning: 4 * t.reasoning, cacheRead: 4 * t.cacheRead, cacheWrite: 0 });
  assert.ok(Math.abs(done.usage.costUsd! - 4 * COST_PER_ANSWER) < 1e-12, `cost ${done.usage.costUsd}`);
  assert.equal(done.maxCostUsd, 1, "a loop that names no budget gets the daemon's ceiling");

  const ls = await ralph(home, ["ls"]);
  assert.match(ls.stdout, new RegExp(`${id}  completed .* \\$0\\.0142`));
  const human = await ralph(home, ["status", id]);
  assert.match(human.stdout, /used 4800 tokens, \$0\.0142 of \$1\.00 \(input 2800, output 600, reasoning 200, cache read 1200, cache write 0\)/);

  await waitFor(() => received("/hook", id).length > 0 && received("/ralph-topic", id).length > 0, { what: "both notifications", timeoutMs: 30_000 });
  const hook = received("/hook", id);
  assert.equal(hook.length, 1);
  const body = JSON.parse(hook[0]!.body) as Record<string, unknown>;
  assert.deepEqual(
    { ...body, time: "" },
    {
      kind: "completed",
      daemon: "local",
      loopId: id,
      title: `Ralph loop ${id} completed`,
      message: `ralph/cost on local: 2/2 stories pass after 2 iteration(s), 4800 tokens, $0.0142`,
      time: "",
      branch: "ralph/cost",
      origin: `file://${project.origin}`,
      status: "completed",
      passed: 2,
      total: 2,
      iterations: 2,
      costUsd: done.usage.costUsd,
      tokens: done.usage.tokens,
    },
  );
  const ntfy = received("/ralph-topic", id);
  assert.equal(ntfy.length, 1);
  assert.equal(ntfy[0]!.body, `ralph/cost on local: 2/2 stories pass after 2 iteration(s), 4800 tokens, $0.0142`);
  assert.equal(ntfy[0]!.headers.title, `Ralph loop ${id} completed`);
  assert.equal(ntfy[0]!.headers.priority, "3");
  assert.equal(ntfy[0]!.headers.tags, "white_check_mark");
  assert.equal(ntfy[0]!.headers.authorization, `Bearer ${NTFY_TOKEN}`);

  daemon.child.kill("SIGTERM");
  await new Promise((r) => daemon.child.once("exit", r));
  daemon = await startRalphd(home);
  assert.deepEqual((await status(id)).usage, done.usage, "the figures are in SQLite");
});

test("a request above the daemon's budget ceiling is refused with the reason and starts nothing", async () => {
  const before = (JSON.parse((await ralph(home, ["ls", "--json"])).stdout) as unknown[]).length;
  gitIn("switch", "-q", "ralph/ceiling");
  const r = await ralph(home, ["start", "task", "--max-cost", "5"], project.repo);
  assert.equal(r.code, ExitCode.InvalidInput);
  assert.match(r.stderr, /maxCostUsd 5 is above this daemon's ceiling of 1 USD per loop \(budget\.maxCostUsd in its config\)/);
  assert.equal((JSON.parse((await ralph(home, ["ls", "--json"])).stdout) as unknown[]).length, before);
});

test("a loop stopped by its token budget pushes what it has and says which limit it hit", async () => {
  model.setScript({ kind: "ralph-agent" });
  const id = await startLoop("ralph/budget", "--max-tokens", "2400");
  const done = await ended(id);
  assert.equal(done.status, "budget");
  assert.equal(done.reason, "token budget reached: 2400 of 2400 tokens");
  assert.equal(done.iteration, 1);
  const pushed = execFileSync("git", ["--git-dir", project.origin, "log", "--format=%s", "main..ralph/budget"]).toString();
  assert.match(pushed, /feat: \[A1\]/, "the work done within the budget reached the origin");
  const logs = await ralph(home, ["logs", id]);
  assert.match(logs.stdout, /token budget reached: 2400 of 2400 tokens/);
  await waitFor(() => received("/ralph-topic", id).length > 0, { what: "the budget notification", timeoutMs: 30_000 });
  const [note] = received("/ralph-topic", id);
  assert.equal(note!.headers.tags, "moneybag");
  assert.equal(note!.body, `ralph/budget on local: 1/2 stories pass after 1 iteration(s), 2400 tokens, $0.0071. token budget reached: 2400 of 2400 tokens`);
});

test("a question from the agent on the daemon is answered at once, shown by ralph logs, and notified", async () => {
  model.setScript({ kind: "ralph-agent", askFirst: true });
  const id = await startLoop("ralph/ask");
  assert.equal((await ended(id)).status, "completed");
  const logs = await ralph(home, ["logs", id]);
  assert.equal(logs.stdout.split(`asked (question): ${SCRIPTED_QUESTION}; answered: No human is available`).length - 1, 2, logs.stdout);
  await waitFor(() => received("/hook", id).filter((r) => r.body.includes('"kind":"asked"')).length === 2, { what: "two asked notifications", timeoutMs: 30_000 });
  const asked = received("/ralph-topic", id).filter((r) => r.headers.tags === "question");
  assert.equal(asked.length, 2);
  assert.equal(asked[0]!.body, `ralph/ask on local, iteration 1: ${SCRIPTED_QUESTION}\nAnswered: ${NO_HUMAN}`);
});

test("ralph say steers a remote loop: the next iteration's prompt has the guidance once, and the events show it", async () => {
  model.setScript({ kind: "hang" });
  const before = model.prompts().length;
  const id = await startLoop("ralph/say");
  await waitFor(() => model.prompts().length > before, { what: "the first iteration's prompt", timeoutMs: 60_000 });
  const note = join(projectRoot, "note.md");
  writeFileSync(note, "Keep each story in its own file.\n");
  const said = await ralph(home, ["say", id, "--file", note, "--json"]);
  assert.equal(said.code, 0, said.stderr);
  assert.deepEqual(JSON.parse(said.stdout), { loopId: id, pending: 1 });
  model.setScript({ kind: "ralph-agent" });
  assert.equal((await ended(id)).status, "completed");
  const prompts = model.prompts().slice(before);
  assert.equal(prompts.filter((p) => p.includes("Keep each story in its own file.")).length, 1);
  assert.ok(!prompts[0]!.includes("Keep each story"), "the running iteration's prompt was already sent");
  const logs = await ralph(home, ["logs", id]);
  assert.match(logs.stdout, /guidance from the owner: Keep each story in its own file\./);
  const late = await ralph(home, ["say", id, "too late"]);
  assert.equal(late.code, ExitCode.InvalidInput);
  assert.match(late.stderr, new RegExp(`loop ${id} is not running \\(it is completed\\)`));
  const empty = await ralph(home, ["say", id, "  "]);
  assert.equal(empty.code, ExitCode.InvalidInput);
});

test("ralph notify test reports each target; a dead one fails with exit 6 and no secret in the output", async () => {
  const ok = await ralph(home, ["notify", "test"]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /delivered {2}hook\n/);
  assert.match(ok.stdout, new RegExp(`delivered  ntfy http://127\\.0\\.0\\.1:${receiver.port}\\n`));
  const tests = receiver.requests.filter((r) => r.body.includes("reach you"));
  assert.equal(tests.length, 2);

  daemon.child.kill("SIGTERM");
  await new Promise((r) => daemon.child.once("exit", r));
  const dead = await deadPort();
  setDaemonConfig(home, { notify: [{ kind: "webhook", url: `http://127.0.0.1:${dead}/hook?token=hush-hush` }] });
  daemon = await startRalphd(home);
  const bad = await ralph(home, ["notify", "test", "--json"]);
  assert.equal(bad.code, ExitCode.Unavailable);
  const [result] = JSON.parse(bad.stdout) as { target: string; ok: boolean; error: string }[];
  assert.equal(result!.ok, false);
  assert.equal(result!.target, `webhook http://127.0.0.1:${dead}`);
  assert.match(result!.error, /ECONNREFUSED/);
  assert.ok(!bad.stdout.includes("hush-hush") && !daemon.log().includes("hush-hush"));
});
