// A hostile repository: prd.json, progress.txt, prompt.md, AGENTS.md and a
// task dir committed as symlinks to decoy files outside it, run through
// `ralph run` and through a real ralphd over a real OpenZiti network. Nothing
// outside the repository may be read into any output or state, or written.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControlClient } from "../../src/client/connection.js";
import { expectOk } from "../../src/client/api.js";
import { streamEvents } from "../../src/client/events.js";
import type { StreamEvent } from "../../src/contract/events.js";
import { startScriptedModel, type ScriptedModel } from "../../src/model/scripted-model.js";
import { scriptedModelConfig } from "../../src/model/opencode-config.js";
import { ExitCode } from "../../src/cli/exit-codes.js";
import { waitFor } from "../../src/util/wait.js";
import { startTestNetwork } from "../support/ziti-network.js";
import { makeProject, ralph, setDaemonConfig, startRalphd } from "../support/daemon-harness.js";
import { HOSTILE_LINKS, git, gitEnv, makeDecoys, makeRepo, plantHostileLink, type Decoys, type Fixture, type HostileLink } from "../support/loop-fixtures.js";

let model: ScriptedModel;
let decoys: Decoys;
let decoyRoot: string;
const fixtures: Fixture[] = [];

before(async () => {
  Object.assign(process.env, gitEnv);
  // An agent that only answers in words: whatever touches a file is the loop itself.
  model = await startScriptedModel({ script: { kind: "reply", text: "Nothing to do." } });
  decoyRoot = mkdtempSync(join(tmpdir(), "ralph-hostile-"));
  decoys = makeDecoys(decoyRoot);
});

let daemon: { network: Awaited<ReturnType<typeof startTestNetwork>>; ralphd?: Awaited<ReturnType<typeof startRalphd>>; project: { repo: string; origin: string }; root: string } | undefined;

after(async () => {
  if (daemon?.ralphd?.child.exitCode === null) {
    daemon.ralphd.child.kill("SIGTERM");
    await new Promise((r) => daemon!.ralphd!.child.once("exit", r));
  }
  await daemon?.network.stop();
  if (daemon) rmSync(daemon.root, { recursive: true, force: true });
  await model?.close();
  for (const f of fixtures) f.cleanup();
  if (decoyRoot) rmSync(decoyRoot, { recursive: true, force: true });
});

/** Every file under dir whose bytes hold a decoy's mark. */
function filesHolding(dir: string, marks: string[]): string[] {
  const found: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const bytes = readFileSync(p);
        if (marks.some((m) => bytes.includes(m))) found.push(p);
      }
    }
  };
  walk(dir);
  return found;
}

const aLink = (link: HostileLink): string => `${link === "AGENTS.md" ? "an" : "a"} ${link}`;

/** The file each link is refused by, relative to the repository. */
const refusedName = (link: HostileLink): string => (link === "task dir" ? "tasks/evil" : link === "AGENTS.md" ? "AGENTS.md" : `task/${link}`);
const refusal = (link: HostileLink) => new RegExp(`${refusedName(link).replace(".", "\\.")} (leads outside the repository|is outside the repository)`);

function assertNoLeak(what: string, text: string): void {
  for (const mark of decoys.marks) assert.ok(!text.includes(mark), `${what} holds "${mark}" from a decoy`);
}

function assertDecoysUntouched(before: ReturnType<Decoys["state"]>): void {
  assert.deepEqual(decoys.state(), before, "every decoy file is unchanged, none added");
  for (const prompt of model.prompts()) assertNoLeak("a prompt", prompt);
}

for (const link of HOSTILE_LINKS) {
  test(`ralph run refuses ${aLink(link)} that leads out of the repository, reading and writing nothing outside it`, async () => {
    const f = makeRepo(model.baseUrl);
    fixtures.push(f);
    const taskRel = plantHostileLink(f.repo, link, decoys);
    const before = decoys.state();
    const r = await ralph(f.home, ["run", join(f.repo, taskRel), "--max-iterations", "2"]);
    const output = r.stdout + r.stderr;
    // Refused before the loop starts, or (AGENTS.md and progress.txt, first used in the iteration) the loop fails.
    assert.equal(r.code, link === "AGENTS.md" || link === "progress.txt" ? ExitCode.Failed : ExitCode.InvalidInput, output);
    assert.match(output, refusal(link));
    assertNoLeak("ralph run's output", output);
    assertDecoysUntouched(before);
    assert.deepEqual(filesHolding(f.root, decoys.marks), [], "nothing in the repository or RALPH_HOME holds the secret");
  });
}

test("ralph run ends as failed when the agent swaps prd.json for a symlink leading out mid-loop", async () => {
  const f = makeRepo(model.baseUrl);
  fixtures.push(f);
  const before = decoys.state();
  model.setScript({ kind: "hang" });
  const prompts = model.prompts().length;
  const run = ralph(f.home, ["run", f.taskDir, "--max-iterations", "2"]);
  try {
    await waitFor(() => model.prompts().length > prompts, { what: "the first iteration's prompt", timeoutMs: 120_000, intervalMs: 200 });
    rmSync(join(f.taskDir, "prd.json"));
    symlinkSync(decoys.target("prd.json"), join(f.taskDir, "prd.json"));
  } finally {
    model.setScript({ kind: "reply", text: "Nothing to do." });
  }
  const r = await run;
  const output = r.stdout + r.stderr;
  assert.equal(r.code, ExitCode.Failed, output);
  assert.match(output, /after iteration 1: task\/prd\.json leads outside the repository/);
  assertNoLeak("ralph run's output", output);
  assertDecoysUntouched(before);
  assert.deepEqual(filesHolding(f.root, decoys.marks), []);
});

const branchOf = (link?: HostileLink): string => `hostile/${link ? link.replace(/[^A-Za-z]+/g, "-").toLowerCase() : "mid-loop"}`;

/** A real network, ralphd offering the scripted model, and a project with a branch per case; started by the first daemon test. */
async function startDaemon(): Promise<NonNullable<typeof daemon>> {
  if (daemon?.ralphd) return daemon;
  const root = mkdtempSync(join(tmpdir(), "ralph-hostile-project-"));
  const network = await startTestNetwork("ralph-hostile");
  daemon = { network, root, project: makeProject(root, [...HOSTILE_LINKS.map(branchOf), branchOf()]) };
  const opencodeConfigFile = join(network.home, "daemon-opencode.json");
  writeFileSync(opencodeConfigFile, JSON.stringify(scriptedModelConfig(model.baseUrl)));
  setDaemonConfig(network.home, { opencodeConfigFile });
  daemon.ralphd = await startRalphd(network.home);
  return daemon;
}

/**
 * Pushes the case's branch, with `link` planted (or none), to the file://
 * origin and asks the daemon for a loop directly: 'ralph start' would refuse
 * it locally.
 */
async function startLoop(client: ControlClient, link?: HostileLink): Promise<string> {
  const { project } = await startDaemon();
  const branch = branchOf(link);
  git(project.repo, "switch", "-q", branch);
  const taskDir = link ? plantHostileLink(project.repo, link, decoys) : "task";
  git(project.repo, "push", "-q", "origin", branch);
  const { loop } = await expectOk(client.remoteName, client.api.loops.$post({ json: { origin: `file://${project.origin}`, branch, taskDir, maxIterations: 2 } }));
  return loop.id;
}

async function endedLoop(client: ControlClient, id: string): Promise<{ status: string; reason: string | null }> {
  return waitFor(
    async () => {
      const { loop } = await expectOk(client.remoteName, client.api.loops[":id"].$get({ param: { id } }));
      return loop.status !== "starting" && loop.status !== "running" && loop;
    },
    { what: `loop ${id} to end`, timeoutMs: 180_000, intervalMs: 300 },
  );
}

/** Nothing the daemon shows or keeps holds the secret: API, events, CLI output, its log, state DB, workspace, opencode's logs. */
async function assertDaemonLeaksNothing(client: ControlClient, id: string): Promise<void> {
  const d = daemon!;
  const events: StreamEvent[] = [];
  await streamEvents(client, { loopId: id, follow: false, onEvent: (e) => events.push(e) });
  assert.ok(events.length > 0);
  assertNoLeak("the loop's events", JSON.stringify(events));
  assertNoLeak("GET /loops", JSON.stringify(await expectOk(client.remoteName, client.api.loops.$get())));
  const home = d.network.home;
  for (const args of [["status", id], ["status", id, "--json"], ["ls"], ["ls", "--json"], ["logs", id], ["logs", id, "--json"]]) {
    const r = await ralph(home, args);
    assert.equal(r.code, 0, r.stderr);
    assertNoLeak(`ralph ${args.join(" ")}`, r.stdout + r.stderr);
  }
  assertNoLeak("ralphd's log", d.ralphd!.log());
  assert.deepEqual(filesHolding(home, decoys.marks), [], "nothing in RALPH_HOME (state DB, workspace, logs) holds the secret");
}

test("ralphd refuses a task dir that is a symbolic link before any loop exists: git sees no prd.json under it", async () => {
  const before = decoys.state();
  await startDaemon();
  const client = await ControlClient.open();
  try {
    const count = (await expectOk(client.remoteName, client.api.loops.$get())).loops.length;
    await assert.rejects(startLoop(client, "task dir"), (e: Error & { code?: string }) => /has no tasks\/evil\/prd\.json: commit and push it first/.test(e.message) && e.code === "invalid_request");
    assert.equal((await expectOk(client.remoteName, client.api.loops.$get())).loops.length, count, "no loop was created");
  } finally {
    await client.close();
  }
  assertDecoysUntouched(before);
});

for (const link of HOSTILE_LINKS.filter((l) => l !== "task dir")) {
  test(`ralphd fails a loop whose ${link} leads out of its worktree, naming the file, reading and writing nothing outside it`, async () => {
    const before = decoys.state();
    await startDaemon();
    const client = await ControlClient.open();
    try {
      const id = await startLoop(client, link);
      const loop = await endedLoop(client, id);
      assert.equal(loop.status, "failed");
      assert.match(loop.reason ?? "", refusal(link));
      await assertDaemonLeaksNothing(client, id);
    } finally {
      await client.close();
    }
    assertDecoysUntouched(before);
  });
}

test("ralphd fails a loop whose agent swaps prd.json for a symlink leading out mid-loop", async () => {
  const before = decoys.state();
  await startDaemon();
  const client = await ControlClient.open();
  try {
    model.setScript({ kind: "hang" });
    const prompts = model.prompts().length;
    let id: string;
    try {
      id = await startLoop(client);
      await waitFor(() => model.prompts().length > prompts, { what: "the first iteration's prompt", timeoutMs: 120_000, intervalMs: 200 });
      const prdFile = join(daemon!.network.home, "daemon", "workspace", "loops", id, "task", "prd.json");
      rmSync(prdFile);
      symlinkSync(decoys.target("prd.json"), prdFile);
    } finally {
      model.setScript({ kind: "reply", text: "Nothing to do." });
    }
    const loop = await endedLoop(client, id);
    assert.equal(loop.status, "failed");
    assert.match(loop.reason ?? "", /after iteration 1: task\/prd\.json leads outside the repository/);
    await assertDaemonLeaksNothing(client, id);
  } finally {
    await client.close();
  }
  assertDecoysUntouched(before);
});
