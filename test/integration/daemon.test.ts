// ralphd and the remote client end to end on one machine: a real OpenZiti
// network and tunnelers, ralphd as a subprocess, real opencode servers driven
// by the scripted model, git over a file:// origin.
import { after, afterEach, before, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { ControlClient } from "../../src/client/connection.js";
import { expectOk } from "../../src/client/api.js";
import { streamEvents, isTerminal } from "../../src/client/events.js";
import { ACTIVE_STATES, type StreamEvent } from "../../src/contract/events.js";
import { ERROR_STATUS } from "../../src/contract/errors.js";
import { startScriptedModel, type ScriptedModel } from "../../src/model/scripted-model.js";
import { pidAlive, signalGroup } from "../../src/process/supervisor.js";
import { findProcesses } from "../../src/process/proc-scan.js";
import { SCRIPTED_MODEL_ID } from "../../src/model/opencode-config.js";
import { CatalogSchema, HealthSchema, LoopListSchema } from "../../src/contract/schemas.js";
import { controlServiceName, loopsServiceName } from "../../src/ziti/roles.js";
import { enrollIdentity } from "../../src/ziti/enroll.js";
import { localManagementClient } from "../../src/ziti/network.js";
import { waitFor } from "../../src/util/wait.js";
import { ExitCode } from "../../src/cli/exit-codes.js";
import { startTestNetwork } from "../support/ziti-network.js";
import { cli, makeProject, ralph, ralphdScript, offerScriptedModel, startRalphd, stopRalphd } from "../support/daemon-harness.js";
import { gitEnv } from "../support/loop-fixtures.js";
import { bindsInStrace, isLoopbackAddress, isLoopbackBind, listenersOfTree } from "../support/sockets.js";
import { agentStatus, eventsOf, raw } from "../support/control.js";

let network: Awaited<ReturnType<typeof startTestNetwork>>;
let model: ScriptedModel;
let daemon: Awaited<ReturnType<typeof startRalphd>>;
let home: string;
let project: { repo: string; origin: string };
let projectRoot: string | undefined;
const opencodePids: number[] = [];

before(async () => {
  Object.assign(process.env, gitEnv);
  network = await startTestNetwork("ralph-daemon");
  home = network.home;
  model = await startScriptedModel({ script: { kind: "ralph-agent" } });
  offerScriptedModel(home, model.baseUrl, { maxConcurrentLoops: 2 });
  projectRoot = mkdtempSync(join(tmpdir(), "ralph-project-"));
  project = makeProject(projectRoot, ["ralph/one", "ralph/two", "ralph/three", "ralph/four", "ralph/five", "ralph/six", "ralph/seven", "ralph/eight", "ralph/nine", "ralph/ten", "ralph/eleven", "ralph/twelve", "ralph/thirteen"]);
  daemon = await startRalphd(home);
});

after(async () => {
  await stopRalphd(daemon);
  for (const pid of opencodePids) signalGroup(pid, "SIGKILL");
  await model?.close();
  await network?.stop();
  if (projectRoot) rmSync(projectRoot, { recursive: true, force: true });
});

// Each test starts from the scripted agent and free slots, whatever the one before did or how it failed.
beforeEach(() => model.setScript({ kind: "ralph-agent" }));
afterEach(async () => {
  if (daemon.child.exitCode !== null || daemon.child.signalCode !== null) return;
  const client = await ControlClient.open();
  try {
    for (const { id, status } of (await expectOk(client.remoteName, client.api.loops.$get())).loops) {
      if (ACTIVE_STATES.includes(status)) await expectOk(client.remoteName, client.api.loops[":id"].stop.$post({ param: { id } }));
    }
  } finally {
    await client.close();
  }
});

/** This test's client dialers (ralph-ziti-dial) running for a service; other suites' have other identities. */
const dialersOf = (service: string): number[] =>
  findProcesses(
    (argv) =>
      /ralph-ziti-dial/.test(argv[0] ?? "") &&
      argv[argv.indexOf("-service") + 1] === service &&
      (argv[argv.indexOf("-identity") + 1] ?? "").startsWith(home),
  );

/** The loop terminators (their instance ids) the controller lists on the local daemon's loops service. */
async function loopTerminators(): Promise<string[]> {
  const mgmt = await localManagementClient();
  try {
    const service = (await mgmt.getService(loopsServiceName("local")))!;
    return (await mgmt.request<{ identity?: string }[]>("GET", `/services/${service.id}/terminators`)).map((t) => t.identity ?? "");
  } finally {
    await mgmt.close();
  }
}

/** ralph-ziti-host processes running with this test's daemon identity. */
const hostHelpers = (): number[] => findProcesses((argv) => /ralph-ziti-host/.test(argv[0] ?? "") && argv[argv.indexOf("-identity") + 1] === network.net.daemonIdentityFile);

const gitIn = (...args: string[]) => execFileSync("git", args, { cwd: project.repo }).toString().trim();

async function startLoop(branch: string): Promise<string> {
  gitIn("switch", "-q", branch);
  const r = await ralph(home, ["start", "task"], project.repo);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

async function loopStatus(id: string): Promise<{ status: string; passed: number; total: number; iteration: number }> {
  const r = await ralph(home, ["status", id, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const waitStatus = (id: string, ok: (s: { status: string; iteration: number }) => boolean, what: string) =>
  waitFor(async () => ok(await loopStatus(id)), { what, timeoutMs: 120_000, intervalMs: 500 });

test("two loops started remotely on two branches run concurrently and complete; the origin has both branches", async () => {
  const [a, b] = [await startLoop("ralph/one"), await startLoop("ralph/two")];
  const ls = JSON.parse((await ralph(home, ["ls", "--json"])).stdout) as { id: string; status: string }[];
  assert.deepEqual(new Set(ls.filter((l) => l.status === "running" || l.status === "starting").map((l) => l.id)), new Set([a, b]), "both run at once");
  for (const id of [a, b]) await waitStatus(id, (s) => s.status === "completed", `loop ${id} to complete`);
  for (const branch of ["ralph/one", "ralph/two"]) {
    const prd = JSON.parse(execFileSync("git", ["--git-dir", project.origin, "show", `${branch}:task/prd.json`]).toString()) as { userStories: { passes: boolean }[] };
    assert.ok(prd.userStories.every((s) => s.passes), `${branch} on the origin has every story passing`);
    const subjects = execFileSync("git", ["--git-dir", project.origin, "log", "--format=%s", `main..${branch}`]).toString();
    assert.match(subjects, /feat: \[A2\]/);
    assert.match(subjects, /feat: \[A1\]/);
  }
  // An ended loop keeps its history, not its secrets or its opencode's private state.
  const db = new Database(join(home, "daemon", "state.db"), { readonly: true });
  try {
    for (const id of [a, b]) {
      const row = db.prepare("SELECT opencodePassword, opencodeSocket, opencodePid FROM loops WHERE id = ?").get(id);
      assert.deepEqual(row, { opencodePassword: null, opencodeSocket: null, opencodePid: null }, `loop ${id}'s opencode secret is erased`);
      const state = join(home, "daemon", "workspace", "state", id);
      assert.ok(!existsSync(join(state, "box")), `loop ${id}'s sandbox (HOME, /tmp, sockets) is removed`);
      assert.ok(existsSync(join(state, "opencode.log")), `loop ${id}'s opencode log stays`);
    }
  } finally {
    db.close();
  }
});

test("following a loop's events survives a killed dialer without missing one", async () => {
  const id = await startLoop("ralph/three");
  const client = await ControlClient.open();
  const status = await agentStatus(home);
  assert.ok(status.running && status.dialers.length === 1, `the client agent keeps the control dialer: ${JSON.stringify(status)}`);
  const dialer = status.dialers[0]!.pid;
  const seen: StreamEvent[] = [];
  let killed = false;
  try {
    await streamEvents(client, {
      loopId: id,
      follow: true,
      stopWhen: isTerminal,
      onEvent: (e) => {
        seen.push(e);
        if (!killed && e.type === "iteration.started") {
          killed = true;
          signalGroup(dialer, "SIGKILL");
        }
      },
    });
    const all: StreamEvent[] = [];
    await streamEvents(client, { loopId: id, follow: false, onEvent: (e) => all.push(e) });
    assert.ok(killed);
    assert.deepEqual(seen.map((e) => e.seq), all.map((e) => e.seq), "every event exactly once, in order");
    assert.ok(seen.some((e) => e.type === "run.ended"));
  } finally {
    await client.close();
  }
  const logs = await ralph(home, ["logs", id]);
  assert.equal(logs.code, 0);
  assert.match(logs.stdout, /#1 A1/);
  assert.match(logs.stdout, /completed/);
});

test("ralph logs -f carries on when the client agent goes away (stopped, then killed), missing and repeating nothing", async () => {
  model.setScript({ kind: "hang" });
  const before = model.requestCount();
  const id = await startLoop("ralph/twelve");
  const child = spawn(process.execPath, [cli, "logs", id, "--follow", "--json"], { env: { ...process.env, RALPH_HOME: home }, stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  const lines: string[] = [];
  let stderr = "";
  createInterface({ input: child.stdout! }).on("line", (l) => lines.push(l));
  child.stderr!.on("data", (d: Buffer) => (stderr += d));
  await waitFor(() => model.requestCount() > before && lines.length > 0, { what: "the follower's first events", timeoutMs: 60_000 });
  // Away it goes, as 'ralph agent stop' (or an upgrade that replaces it) does it...
  assert.equal((await ralph(home, ["agent", "stop"])).code, 0);
  await waitFor(async () => (await agentStatus(home)).running, { what: "the follower to start a fresh agent", timeoutMs: 30_000 });
  // ...and as a crash does it.
  const fresh = await agentStatus(home);
  assert.ok(fresh.running);
  signalGroup(fresh.pid, "SIGKILL");
  await waitFor(async () => { const s = await agentStatus(home); return s.running && s.pid !== fresh.pid; }, { what: "the follower to start another agent", timeoutMs: 30_000 });
  model.setScript({ kind: "ralph-agent" });
  assert.equal(await exited, 0, `the follower ends with the loop: ${stderr}`);
  const seen = lines.map((l) => (JSON.parse(l) as StreamEvent).seq);
  assert.deepEqual(seen, (await eventsOf(id)).map((e) => e.seq), "every event exactly once, in order");
  assert.ok(lines.some((l) => (JSON.parse(l) as StreamEvent).type === "run.ended"));
});

test("ralph stop stops a loop and frees its slot", async () => {
  model.setScript({ kind: "hang" });
  const before = model.requestCount();
  const id = await startLoop("ralph/four");
  await waitFor(() => model.requestCount() > before, { what: "the loop's first model request", timeoutMs: 60_000 });
  const stopped = await ralph(home, ["stop", id, "--json"]);
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.equal(JSON.parse(stopped.stdout).status, "stopped");
  const client = await ControlClient.open();
  try {
    const health = HealthSchema.parse(await expectOk(client.remoteName, client.api.health.$get()));
    assert.equal(health.loops.active, 0);
  } finally {
    await client.close();
  }
});

/** A command under `strace -f -e trace=bind`, its exit code once it and everything it started have exited. */
function straced(trace: string, args: string[], env: NodeJS.ProcessEnv = {}): { done: Promise<{ code: number | null; stderr: string }> } {
  const c = spawn("strace", ["-f", "-qq", "-e", "trace=bind", "-o", trace, process.execPath, cli, ...args], { env: { ...process.env, RALPH_HOME: home, ...env }, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  c.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  return {
    done: new Promise((resolve) => {
      c.on("error", (err) => resolve({ code: -1, stderr: `cannot run strace (install it, e.g. 'apt-get install strace'): ${err.message}` }));
      c.on("exit", (code) => resolve({ code, stderr }));
    }),
  };
}

test("a client command binds nothing beyond loopback at any moment, its Ziti login included (every bind() of the command, of the client agent and of their dialers)", async () => {
  // The agent in the foreground under its own trace, so that `ls` uses it and exits.
  assert.equal((await ralph(home, ["agent", "stop"])).code, 0);
  const agentTrace = join(home, "agent.strace");
  const agent = straced(agentTrace, ["agent", "run"]);
  const socket = join(home, "client", "agent", "agent.sock");
  await waitFor(() => existsSync(socket), { what: "the client agent's socket", timeoutMs: 30_000 });
  const lsTrace = join(home, "ls.strace");
  const ls = await straced(lsTrace, ["ls", "--json"]).done;
  assert.equal(ls.code, 0, ls.stderr);
  const running = await agentStatus(home);
  assert.ok(running.running && running.dialers.length === 1, JSON.stringify(running));
  const dialerSocket = running.dialers[0]!.socket;
  for (const s of [socket, dialerSocket]) assert.equal(statSync(s).mode & 0o777, 0o600, `${s} is the user's only`);
  assert.equal(statSync(join(home, "client", "agent")).mode & 0o777, 0o700);
  assert.equal((await ralph(home, ["agent", "stop"])).code, 0);
  const stopped = await agent.done;
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.ok(!existsSync(socket) && !existsSync(dialerSocket), "the agent removed its sockets");
  const lsBinds = bindsInStrace(readFileSync(lsTrace, "utf8"));
  const agentBinds = bindsInStrace(readFileSync(agentTrace, "utf8"));
  assert.deepEqual(lsBinds, [], "the command itself binds nothing: it uses the agent");
  assert.ok(agentBinds.some((b) => b.family === "AF_UNIX" && b.address === dialerSocket), "the audit saw the dialer's own listener");
  assert.deepEqual(agentBinds.filter((b) => !isLoopbackBind(b)), [], "no bind beyond loopback");
  assert.deepEqual(agentBinds.filter((b) => b.family !== "AF_UNIX"), [], "no TCP listener at all: the agent and its dialers use Unix sockets only");
});

test("the daemon reports its health and the models and agents its loops can use", async () => {
  const health = await ralph(home, ["health", "--json"]);
  assert.equal(health.code, 0, health.stderr);
  const h = JSON.parse(health.stdout) as { name: string; healthy: boolean; loops: { max: number }; versions: { opencode: string } };
  assert.equal(h.name, "local");
  assert.equal(h.healthy, true);
  assert.equal(h.loops.max, 2);
  assert.match(h.versions.opencode, /^\d+\.\d+\.\d+/);
  const models = await ralph(home, ["models", "--json"]);
  assert.equal(models.code, 0, models.stderr);
  const catalog = CatalogSchema.parse(JSON.parse(models.stdout));
  assert.ok(catalog.models.some((m) => m.id === SCRIPTED_MODEL_ID), "the daemon's opencode config adds its provider");
  assert.ok(catalog.agents.some((a) => a.name === "build" && a.mode === "primary"));
  assert.ok(!models.stdout.includes("not-needed"), "provider keys and options stay on the daemon");
});

test("ralph attach --print-url right after ralph start waits for the loop's opencode, opens a ready proxy to it and closes it on Ctrl-C", async (t) => {
  model.setScript({ kind: "hang" });
  const id = await startLoop("ralph/eight");
  const child = spawn(process.execPath, [cli, "attach", id, "--print-url"], { env: { ...process.env, RALPH_HOME: home }, stdio: ["ignore", "pipe", "pipe"] });
  // A failed assertion must not leave it running: the file would never end.
  t.after(() => void (child.exitCode === null && child.signalCode === null && child.kill("SIGKILL")));
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const url = await new Promise<string>((r) => createInterface({ input: child.stdout! }).once("line", r));
  assert.match(stderr, new RegExp(`loop ${id} is starting: waiting for its opencode to come up`), "it said it was waiting");
  assert.ok((await loopTerminators()).includes(id), "the loop is a terminator of the daemon's loops service while it runs");
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const password = await waitFor(() => /OPENCODE_SERVER_PASSWORD=(\S+)/.exec(stderr)?.[1], { what: "the password", timeoutMs: 10_000 });
  const auth = { authorization: "Basic " + Buffer.from(`opencode:${password}`).toString("base64") };
  // The loop makes its first session as its iteration starts, which may be just after the proxy is ready.
  const iterationSession = async () => ((await (await fetch(`${url}/session`, { headers: auth })).json()) as { title: string }[]).some((s) => s.title === "Ralph iteration");
  await waitFor(iterationSession, { what: "the URL to lead to the loop's own opencode, with its iteration's session", timeoutMs: 30_000 });
  assert.equal((await fetch(`${url}/session`)).status, 401, "and it still wants the loop's password");
  const listeners = listenersOfTree(process.pid);
  for (const what of ["ralph-ziti-dial", "quickstart"]) assert.ok(listeners.some((l) => l.command.includes(what)), `${what} listens`);
  // ralphd's control API and the loop's opencode are Unix sockets; opencode's own port is in its sandbox's network namespace.
  for (const what of ["ralphd", "opencode"]) assert.deepEqual(listeners.filter((l) => l.command.includes(what)), [], `${what} has no TCP listener on this host`);
  assert.deepEqual(listeners.filter((l) => !isLoopbackAddress(l.address)), [], "nothing listens beyond 127.0.0.1");
  child.kill("SIGINT");
  assert.equal(await exited, 0);
  assert.deepEqual(dialersOf(loopsServiceName("local")), [], "the proxy closed with it");
  assert.equal((await ralph(home, ["stop", id])).code, 0);
  await waitFor(async () => !(await loopTerminators()).includes(id), { what: "the loop's terminator to go with it", timeoutMs: 10_000 });
  const late = await ralph(home, ["attach", id, "--print-url"]);
  assert.equal(late.code, ExitCode.InvalidInput);
  assert.match(late.stderr, /has no opencode to attach to \(it is stopped\)/);
});

test("ralph attach in a real terminal shows the current iteration's session, and follows the loop to the next one", async (t) => {
  model.setScript({ kind: "hang" });
  const before = model.requestCount();
  const id = await startLoop("ralph/thirteen");
  await waitFor(() => model.requestCount() > before, { what: "iteration 1's model request", timeoutMs: 60_000 });
  // tmux is the terminal: what it shows is what a person would see.
  const session = `ralph-attach-${process.pid}`;
  const tmux = (...args: string[]) => execFileSync("tmux", args).toString();
  tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "48", `env RALPH_HOME=${home} ${process.execPath} ${cli} attach ${id}; sleep 600`);
  t.after(() => void execFileSync("tmux", ["kill-session", "-t", session], { stdio: "ignore" }));
  const screen = () => tmux("capture-pane", "-p", "-t", session);
  await waitFor(() => screen().includes("one iteration of a Ralph loop"), { what: "the iteration's prompt on the attached screen", timeoutMs: 60_000, intervalMs: 500 }).catch((err: Error) => {
    throw new Error(`${err.message}; the screen:\n${screen()}`);
  });
  assert.ok(!/Ask anything/.test(screen()), `not opencode's empty home screen:\n${screen()}`);
  // The next iterations answer with a mark of their own: the screen follows them.
  model.setScript({ kind: "reply", text: "LATER-ITERATION-ANSWER" });
  await waitFor(() => screen().includes("LATER-ITERATION-ANSWER"), { what: "the next iteration's session on the screen", timeoutMs: 90_000, intervalMs: 500 }).catch((err: Error) => {
    throw new Error(`${err.message}; the screen:\n${screen()}`);
  });
  assert.equal((await ralph(home, ["stop", id])).code, 0);
});

test("Ctrl-C on ralph logs --follow exits as stopped and leaves no dialer of its own behind", async () => {
  model.setScript({ kind: "hang" });
  const id = await startLoop("ralph/nine");
  const child = spawn(process.execPath, [cli, "logs", id, "--follow"], { env: { ...process.env, RALPH_HOME: home }, stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  await new Promise((r) => createInterface({ input: child.stdout! }).once("line", r));
  child.kill("SIGINT");
  assert.equal(await exited, ExitCode.Stopped);
  const agent = await agentStatus(home);
  assert.ok(agent.running, "the client agent keeps running for the next command");
  assert.deepEqual(dialersOf("ralph-control-local"), agent.dialers.map((d) => d.pid), "the only control dialer is the agent's: the command left none of its own");
  assert.equal((await ralph(home, ["stop", id])).code, 0);
});

/** The daemon's event followers now. */
async function followers(): Promise<number> {
  const client = await ControlClient.open();
  try {
    return (await expectOk(client.remoteName, client.api.health.$get())).followers.active;
  } finally {
    await client.close();
  }
}

test("a ralph logs --follow killed outright frees its follower on the daemon; without the agent, its own dialer notices its death and exits", async () => {
  model.setScript({ kind: "hang" });
  const id = await startLoop("ralph/eleven");
  const before = await followers();
  const follow = (env: NodeJS.ProcessEnv = {}) => {
    const child = spawn(process.execPath, [cli, "logs", id, "--follow"], { env: { ...process.env, RALPH_HOME: home, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise((r) => child.on("exit", r));
    const firstLine = new Promise((resolve, reject) => {
      createInterface({ input: child.stdout! }).once("line", resolve);
      void exited.then((code) => reject(new Error(`ralph logs exited (${code}) before its first line: ${stderr}`)));
    });
    return { child, exited, firstLine };
  };
  const viaAgent = follow();
  await viaAgent.firstLine;
  assert.equal(await followers(), before + 1, "it follows the loop's events");
  viaAgent.child.kill("SIGKILL");
  await viaAgent.exited;
  await waitFor(async () => (await followers()) === before, { what: "the daemon to drop the killed command's follower", timeoutMs: 10_000 });

  const agentDialers = dialersOf("ralph-control-local");
  const direct = follow({ RALPH_AGENT: "off" });
  await direct.firstLine;
  const own = dialersOf("ralph-control-local").filter((p) => !agentDialers.includes(p));
  assert.equal(own.length, 1, "with RALPH_AGENT=off the follower runs a dialer of its own");
  direct.child.kill("SIGKILL");
  await direct.exited;
  await waitFor(() => !pidAlive(own[0]!), { what: "the orphaned dialer to exit", timeoutMs: 10_000 });
  assert.equal((await ralph(home, ["stop", id])).code, 0);
});

test("ralphd check passes when ready and names what to fix when not, with the daemon's own identity only", async () => {
  const run = (config?: string) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const c = spawn(process.execPath, [ralphdScript, "check", "--json", ...(config ? ["--config", config] : [])], { env: { ...process.env, RALPH_HOME: home }, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      c.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
      c.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
      c.on("exit", (code) => resolve({ code, stdout, stderr }));
    });
  const failures = (r: { stdout: string }) => Object.fromEntries((JSON.parse(r.stdout) as { name: string; ok: boolean; detail: string }[]).filter((c) => !c.ok).map((c) => [c.name, c.detail]));
  const terminatorsBefore = await loopTerminators();
  const ok = await run();
  assert.equal(ok.code, 0, ok.stdout);
  const checks = JSON.parse(ok.stdout) as { name: string; ok: boolean; detail: string }[];
  assert.deepEqual(checks.map((c) => c.name), ["git", "ziti-host", "opencode", "sandbox", "identity", "controller", "login", "bind", "workspace"]);
  assert.match(checks.find((c) => c.name === "sandbox")!.detail, /^bubblewrap [\d.]+ \(\/\S*bwrap\): (each loop as an unprivileged user of its own|loops in user namespaces of their own); limits by (cgroup v1|rlimits)/);
  assert.ok(checks.every((c) => c.ok), ok.stdout);
  assert.deepEqual(await loopTerminators(), terminatorsBefore, "the check hosts nothing");
  assert.equal(hostHelpers().length, 1, "and leaves no helper behind: only the running ralphd's");
  const config = JSON.parse(readFileSync(join(home, "daemon", "config.json"), "utf8")) as { identityFile: string; name: string };

  const broken = join(home, "broken-daemon.json");
  writeFileSync(broken, JSON.stringify({ ...config, identityFile: join(home, "nowhere.json") }));
  const bad = await run(broken);
  assert.equal(bad.code, ExitCode.Unavailable);
  const failed = failures(bad);
  assert.deepEqual(Object.keys(failed), ["identity", "controller", "login", "bind"]);
  assert.match(failed.identity!, /cannot read the Ziti identity .*nowhere\.json.*enrol one/);
  assert.match(failed.controller!, /cannot read the Ziti identity .*nowhere\.json \(ENOENT\)/);
  assert.match(failed.login!, /cannot load identity .*nowhere\.json/);

  // An identity whose controller is not there: the real cause, not a refusal.
  const away = join(home, "away-identity.json");
  writeFileSync(away, JSON.stringify({ ...JSON.parse(readFileSync(config.identityFile, "utf8")), ztAPI: "https://127.0.0.1:1/edge/client/v1" }), { mode: 0o600 });
  const awayConfig = join(home, "away-daemon.json");
  writeFileSync(awayConfig, JSON.stringify({ ...config, identityFile: away }));
  const down = failures(await run(awayConfig));
  assert.deepEqual(Object.keys(down), ["controller", "login", "bind"]);
  assert.match(down.controller!, /cannot reach the Ziti controller at 127\.0\.0\.1:1: connection refused/);
  assert.match(down.login!, /cannot reach the controller at https:\/\/127\.0\.0\.1:1\S*: connection refused/);

  // Another daemon's name: this identity may not bind its services.
  const otherConfig = join(home, "other-daemon.json");
  writeFileSync(otherConfig, JSON.stringify({ ...config, name: "elsewhere" }));
  const other = failures(await run(otherConfig));
  assert.deepEqual(Object.keys(other), ["bind"]);
  assert.match(other.bind!, /service ralph-control-elsewhere is not visible to this identity.*the network's admin provisions/);

  // A config of an earlier release, with admin credentials, is refused.
  const withAdmin = join(home, "admin-daemon.json");
  writeFileSync(withAdmin, JSON.stringify({ ...config, controller: { url: "https://127.0.0.1:1280", caFile: "/ca.pem", auth: { method: "password", username: "admin", passwordFile: "/pw" } } }));
  const refused = await run(withAdmin);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /ralphd needs no admin credentials any more: delete the controller key, and its password file from this machine/);
});

test("the daemon holds no admin secret: nothing under its directory names the admin password or the controller, and it logs in with its own identity only", async () => {
  const password = readFileSync(join(home, "ziti", "admin-password"), "utf8").trim();
  assert.ok(password.length >= 16);
  const config = JSON.parse(readFileSync(join(home, "daemon", "config.json"), "utf8")) as Record<string, unknown>;
  assert.ok(!("controller" in config), "config.json has no controller section");
  assert.ok(!("hostTunneler" in config));
  const daemonDir = join(home, "daemon");
  const isFile = (f: string) => {
    try {
      return statSync(f).isFile();
    } catch {
      return false; // gone meanwhile
    }
  };
  const files = readdirSync(daemonDir, { recursive: true, encoding: "utf8" }).map((f) => join(daemonDir, f)).filter(isFile);
  assert.ok(files.length > 3, `the daemon's files were read: ${files.length}`);
  for (const f of files) {
    if (!isFile(f)) continue;
    const content = readFileSync(f);
    assert.ok(!content.includes(password), `${f} holds no admin password`);
    assert.ok(!content.includes("admin-password"), `${f} names no admin password file`);
  }
  // What ralphd runs with: its environment, and its host helper's command line.
  const environ = (pid: number) => readFileSync(`/proc/${pid}/environ`, "utf8");
  assert.ok(!environ(daemon.pid).includes(password));
  const helpers = hostHelpers();
  assert.equal(helpers.length, 1, "one host helper, on the daemon's identity");
  const helperArgv = readFileSync(`/proc/${helpers[0]}/cmdline`, "utf8").split("\0");
  assert.deepEqual(helperArgv.slice(1).filter(Boolean), ["-identity", network.net.daemonIdentityFile]);
  assert.ok(!environ(helpers[0]!).includes(password));
  // The controller sees the daemon's identity logged in, hosting the control service.
  const mgmt = await localManagementClient();
  try {
    const identity = (await mgmt.getIdentity("ralph-daemon-local"))!;
    const sessions = await mgmt.request<{ identityId?: string; identity?: { id: string } }[]>("GET", "/api-sessions?limit=500");
    assert.ok(sessions.some((a) => (a.identityId ?? a.identity?.id) === identity.id), "the daemon's identity is logged in");
    const control = (await mgmt.getService(controlServiceName("local")))!;
    const terminators = await mgmt.request<{ identityId?: string; identity?: { id: string } }[]>("GET", `/services/${control.id}/terminators`);
    assert.ok(terminators.length >= 1, "the control service is hosted");
    const policies = await mgmt.request<{ name: string }[]>("GET", `/identities/${identity.id}/service-policies`);
    assert.deepEqual(policies.map((p) => p.name), ["ralph-bind-local"], "its only grant is its own Bind policy");
  } finally {
    await mgmt.close();
  }
});

test("a second ralphd for the same home is refused", async () => {
  const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const c = spawn(process.execPath, [ralphdScript], { env: { ...process.env, RALPH_HOME: home }, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    c.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    c.on("exit", (code) => resolve({ code, stderr }));
  });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, new RegExp(`ralphd is already running for .* \\(pid ${daemon.pid}\\)`));
});

test("refused requests get a clear error and change nothing", async () => {
  // The branch the valid parts name is on the origin, whichever tests ran before (one may have pushed a loop's work there).
  if (!gitIn("ls-remote", "origin", "refs/heads/ralph/one")) gitIn("push", "-q", "origin", "ralph/one");
  const client = await ControlClient.open();
  try {
    const loops = async () => LoopListSchema.parse(await expectOk(client.remoteName, client.api.loops.$get())).loops.length;
    const before = await loops();
    const refused = async (body: unknown, pattern: RegExp, code: "invalid_request" | "too_large" = "invalid_request") => {
      const r = await raw(client, "POST", "/loops", JSON.stringify(body));
      assert.equal(r.status, ERROR_STATUS[code], JSON.stringify(r.json));
      assert.equal(r.json.error.code, code);
      assert.match(r.json.error.message, pattern);
    };
    const ok = { origin: `file://${project.origin}`, branch: "ralph/one", taskDir: "task" };
    await refused({ ...ok, origin: "--upload-pack=touch /tmp/pwned" }, /origin must not start with '-'/);
    await refused({ ...ok, origin: "ext::sh -c touch% /tmp/pwned" }, /not an allowed git URL/);
    await refused({ ...ok, branch: "-f" }, /branch must not start with '-'/);
    await refused({ ...ok, branch: "bad..name" }, /not a valid git branch name/);
    await refused({ ...ok, taskDir: "../../etc" }, /leaves the repository/);
    await refused({ ...ok, taskDir: "/etc" }, /leaves the repository/);
    await refused({ ...ok, sneaky: true }, /Unrecognized key/);
    await refused({ ...ok, maxIterations: -1 }, /maxIterations/);
    const mirrors = readdirSync(join(home, "daemon", "workspace", "repos")).sort();
    await refused({ ...ok, origin: `file://${projectRoot}/no-such-origin.git` }, /cannot fetch file:\/\/.*no-such-origin\.git \(.*\): check the URL, and that this daemon may read it/);
    assert.deepEqual(readdirSync(join(home, "daemon", "workspace", "repos")).sort(), mirrors, "no mirror is left for an origin that could not be fetched");
    await refused({ ...ok, branch: "ralph/never-pushed" }, /branch "ralph\/never-pushed" does not exist on/);
    await refused({ ...ok, taskDir: "no/such/task" }, /branch "ralph\/one" of file:\/\/.* has no no\/such\/task\/prd\.json: commit and push it first/);
    await refused({ ...ok, taskDir: "x".repeat(70 * 1024) }, /over 65536 bytes/, "too_large");
    const res = await raw(client, "POST", "/loops", "{not json");
    assert.equal(res.status, 400);
    assert.match(res.json.error.message, /not valid JSON/);
    await assert.rejects(expectOk(client.remoteName, client.api.loops[":id"].$get({ param: { id: "nope" } })), (e: Error & { code?: string }) => /no loop "nope"/.test(e.message) && e.code === "not_found");
    assert.equal(await loops(), before, "no refused request created a loop");
  } finally {
    await client.close();
  }
  const unknown = await ralph(home, ["status", "nope"]);
  assert.equal(unknown.code, ExitCode.NotFound);
});

test("a full daemon and a second loop on a running branch are refused", async () => {
  model.setScript({ kind: "hang" });
  const a = await startLoop("ralph/six");
  const dup = await ralph(home, ["start", "task"], project.repo);
  assert.equal(dup.code, ExitCode.InvalidInput);
  assert.match(dup.stderr, /already running on branch ralph\/six/);
  const b = await startLoop("ralph/seven");
  gitIn("switch", "-q", "ralph/four");
  const full = await ralph(home, ["start", "task"], project.repo);
  assert.equal(full.code, ExitCode.InvalidInput);
  assert.match(full.stderr, /daemon is full \(2 loops running\)/);
  for (const id of [a, b]) assert.equal((await ralph(home, ["stop", id])).code, 0);
});

test("a laptop enrols with a one-time token, reaches the daemon, and forgets its key with the remote", async () => {
  const token = join(home, "box.jwt");
  const created = await ralph(home, ["ziti", "identity", "create", "box-laptop", "--role", "client", "--out", token]);
  assert.equal(created.code, 0, created.stderr);
  const added = await ralph(home, ["remote", "add", "box", "--token", token, "--service", "ralph-control-local"]);
  assert.equal(added.code, 0, added.stderr);
  assert.match(added.stdout, /remote box added: ralphd local answers \(ralph \d+\.\d+\.\d+\)/);
  const identityFile = join(home, "client", "identities", "box.json");
  assert.equal(statSync(identityFile).mode & 0o777, 0o600);
  assert.equal((await ralph(home, ["ls", "--remote", "box", "--json"])).code, 0);
  const again = await ralph(home, ["remote", "add", "box", "--token", token]);
  assert.equal(again.code, ExitCode.InvalidInput, "a remote of that name exists");
  assert.equal((await ralph(home, ["remote", "rm", "box"])).code, 0);
  assert.ok(!existsSync(identityFile), "the enrolled identity went with its remote");
  const reused = await ralph(home, ["remote", "add", "box", "--token", token]);
  assert.equal(reused.code, ExitCode.InvalidInput);
  assert.match(reused.stderr, /the controller refused the token: it was already used/);
  assert.ok(!existsSync(identityFile) && !(await ralph(home, ["remote", "ls"])).stdout.includes("box"), "a refused token leaves no identity and no remote");
  assert.equal((await ralph(home, ["ziti", "identity", "revoke", "box-laptop"])).code, 0);
});

test("an identity without a Dial policy cannot reach the control service", async () => {
  const mgmt = await localManagementClient();
  try {
    const { id } = await mgmt.request<{ id: string }>("POST", "/identities", { name: "outsider", type: "Default", isAdmin: false, roleAttributes: [], enrollment: { ott: true } });
    const jwt = (await mgmt.request<{ enrollment: { ott: { jwt: string } } }>("GET", `/identities/${id}`)).enrollment.ott.jwt;
    await enrollIdentity(jwt, join(home, "outsider.json"));
  } finally {
    await mgmt.close();
  }
  assert.equal((await ralph(home, ["remote", "add", "outsider", "--identity", join(home, "outsider.json"), "--service", "ralph-control-local"])).code, 0);
  const r = await ralph(home, ["ls", "--remote", "outsider"]);
  assert.equal(r.code, ExitCode.Unavailable);
  assert.match(r.stderr, /cannot reach ralph-control-local on remote "outsider"/);
  assert.equal((await ralph(home, ["remote", "rm", "outsider"])).code, 0);
});


test("ralphd killed with SIGKILL and restarted re-adopts a running loop, which then completes; a loop whose opencode died is marked failed", async () => {
  model.setScript({ kind: "hang" });
  const before = model.requestCount();
  const id = await startLoop("ralph/five");
  const orphan = await startLoop("ralph/ten");
  await waitFor(() => model.requestCount() >= before + 2, { what: "both loops' first model requests", timeoutMs: 60_000 });
  const orphanOpencode = Number((await eventsOf(orphan)).find((e) => e.type === "opencode.started")!.pid);
  daemon.child.kill("SIGKILL");
  await new Promise((res) => daemon.child.once("exit", res));
  signalGroup(orphanOpencode, "SIGKILL");
  await waitFor(() => !pidAlive(orphanOpencode), { what: "the killed opencode to be gone", timeoutMs: 10_000 });
  daemon = await startRalphd(home);
  assert.match(daemon.log(), new RegExp(`re-adopted running loops: ${id}`));
  assert.match(daemon.log(), new RegExp(`marked failed \\(their opencode was gone\\): ${orphan}`));
  const failed = await loopStatus(orphan);
  assert.equal(failed.status, "failed");
  assert.match((failed as { reason?: string }).reason ?? "", new RegExp(`ralphd restarted and the loop's opencode \\(pid ${orphanOpencode}\\) was gone`));
  await waitFor(() => hostHelpers().length === 1, { what: "exactly one ralph-ziti-host for this daemon's identity: the killed ralphd's died with it", timeoutMs: 10_000 });
  await waitFor(async () => (await loopTerminators()).includes(id), { what: "the re-adopted loop to be hosted again", timeoutMs: 30_000 });
  // Only now may the loop finish: a finished loop is no longer hosted.
  model.setScript({ kind: "ralph-agent" });
  await waitStatus(id, (s) => s.status === "completed", "the re-adopted loop to complete");
  const started = (await eventsOf(id)).filter((e) => e.type === "opencode.started");
  assert.equal(started.length, 1, "the same opencode server carried on after the restart");
  const pid = Number(started[0]!.pid);
  opencodePids.push(pid);
  assert.equal(pidAlive(pid), false, "and was stopped when the loop ended");
});
