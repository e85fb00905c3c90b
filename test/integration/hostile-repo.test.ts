// A hostile repository: prd.json, progress.txt, prompt.md, AGENTS.md and a
// task dir committed as symlinks to decoy files outside it, run through
// `ralph run` and through a real ralphd over a real OpenZiti network. Nothing
// outside the repository may be read into any output or state, or written.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
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
import { cli, makeProject, ralph, setDaemonConfig, startRalphd } from "../support/daemon-harness.js";
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

/** A story an agent or a hostile repository could write: its id and title set the terminal's title, clear the screen and colour the text. */
const HOSTILE_TEXT = "Inj \u001b]0;pwned\u0007 \u001b[2J\u001b[31mRED\u009b6n";
const HOSTILE_ID = "AC\u001b[2J-001";
const hostilePrd = (branchName: string, extra: object = {}) => ({
  branchName,
  userStories: [{ id: HOSTILE_ID, title: HOSTILE_TEXT, priority: 1, passes: false, ...extra }],
});
/** Raw bytes that would drive a terminal: anything C0 but newline, tab and (on a terminal) carriage return, DEL, C1. */
const RAW_CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;

/** A command run to its end without blocking this process, whose scripted model must answer meanwhile. */
function runToEnd(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString("latin1")));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString("latin1")));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

test("ralph run shows a hostile story's id and title escaped, on a pipe and on a terminal, where its own colours still draw", async () => {
  const f = makeRepo(model.baseUrl, hostilePrd("ralph/inj-local"));
  fixtures.push(f);
  const env = { ...process.env, RALPH_HOME: f.home };
  const piped = await runToEnd(process.execPath, [cli, "run", f.taskDir, "--max-iterations", "1"], env);
  assert.equal(piped.code, ExitCode.Exhausted, piped.stderr);
  const out = piped.stdout + piped.stderr;
  assert.doesNotMatch(out, RAW_CONTROL, "nothing raw reaches a pipe");
  assert.ok(out.includes("AC\\x1b[2J-001 Inj \\x1b]0;pwned\\x07 \\x1b[2J\\x1b[31mRED\\x9b6n"), out);
  // A real terminal: script(1) gives the command a pseudo-terminal, as a person's shell would.
  const tty = await runToEnd("script", ["-qfec", `${process.execPath} ${cli} run ${f.taskDir} --max-iterations 1`, "/dev/null"], { ...env, NO_COLOR: "" });
  const screen = tty.stdout;
  assert.ok(screen.includes("\u001b[1m#1\u001b[22m"), "the project's own bold still draws on a terminal");
  assert.ok(!screen.includes("\u001b]0;") && !screen.includes("\u001b[2J") && !screen.includes("\u009b"), "the story's sequences do not");
  assert.ok(screen.includes("\\x1b]0;pwned\\x07"));
});

test("ralph ls, status, logs and start show hostile PRD text escaped, never raw; --json stays exact", async () => {
  const { project, network } = await startDaemon();
  const home = network.home;
  git(project.repo, "switch", "-q", "-c", "hostile/terminal", "main");
  mkdirSync(join(project.repo, "task"), { recursive: true });
  writeFileSync(join(project.repo, "task", "prd.json"), JSON.stringify(hostilePrd("hostile/terminal")));
  git(project.repo, "add", "-A");
  git(project.repo, "commit", "-q", "-m", "a hostile PRD");
  const started = await ralph(home, ["start", "task", "--max-iterations", "1"], project.repo);
  assert.equal(started.code, 0, started.stderr);
  const id = started.stdout.trim();
  await waitFor(async () => JSON.parse((await ralph(home, ["status", id, "--json"])).stdout).status === "exhausted", { what: "the hostile loop to end", timeoutMs: 120_000, intervalMs: 500 });
  for (const args of [["ls"], ["status", id], ["logs", id]]) {
    const r = await ralph(home, args);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout + r.stderr, RAW_CONTROL, `ralph ${args[0]} writes nothing raw`);
  }
  assert.ok((await ralph(home, ["logs", id])).stdout.includes("#1 AC\\x1b[2J-001 Inj \\x1b]0;pwned\\x07"));
  assert.ok((await ralph(home, ["status", id])).stdout.includes("AC\\x1b[2J-001"), "the story in progress, escaped");
  const events = (await ralph(home, ["logs", id, "--json"])).stdout.trim().split("\n").map((l) => JSON.parse(l) as { type: string; storyTitle?: string });
  assert.equal(events.find((e) => e.type === "iteration.started")?.storyTitle, HOSTILE_TEXT, "--json carries the title exactly");
  // A cycle among hostile ids: the client's refusal quotes them, escaped.
  writeFileSync(
    join(project.repo, "task", "prd.json"),
    JSON.stringify({ branchName: "hostile/terminal", userStories: [{ id: HOSTILE_ID, title: "a", blockedBy: ["B\u0007"] }, { id: "B\u0007", title: "b", blockedBy: [HOSTILE_ID] }] }),
  );
  git(project.repo, "commit", "-q", "-am", "a cycle");
  const cycle = await ralph(home, ["start", "task"], project.repo);
  assert.equal(cycle.code, ExitCode.InvalidInput);
  assert.match(cycle.stderr, /AC\\x1b\[2J-001 -> B\\x07 -> AC\\x1b\[2J-001 is a cycle/);
  assert.doesNotMatch(cycle.stderr, RAW_CONTROL);
});
