// Attacks from inside a loop, checked from outside. The scripted model plays
// a prompt-injected agent: its first tool call in every turn tries to read,
// write, connect to and signal what is not the loop's own; then it does the
// story as a well-behaved agent would. Under ralphd and under ralph run, each
// attempt must fail, the decoys must be untouched and unread, and the story
// must still be done, committed and pushed.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer, type AddressInfo, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControlClient } from "../../src/client/connection.js";
import { streamEvents } from "../../src/client/events.js";
import type { StreamEvent } from "../../src/contract/events.js";
import type { LoopEvent } from "../../src/loop/events.js";
import { startScriptedModel, type ScriptedModel } from "../../src/model/scripted-model.js";
import { cacheDir } from "../../src/config/paths.js";
import { findProcesses } from "../../src/process/proc-scan.js";
import { pidAlive } from "../../src/process/supervisor.js";
import { waitFor } from "../../src/util/wait.js";
import { startTestNetwork } from "../support/ziti-network.js";
import { cli, makeProject, offerScriptedModel, ralph, startRalphd, stopRalphd } from "../support/daemon-harness.js";
import { git, gitEnv, makeRepo, type Fixture } from "../support/loop-fixtures.js";
import { attackCommand, reportIn, type AttackReport, type AttackTargets } from "../support/attacks.js";

const TOKEN = `ralphpwn${randomBytes(6).toString("hex")}`;
const secret = (what: string) => `${what}-secret-${randomBytes(12).toString("hex")}`;
const SSH_SECRET = secret("ssh");
const OTHER_SECRET = secret("other-loop");
const ENV_SECRET = secret("env");

let network: Awaited<ReturnType<typeof startTestNetwork>>;
let model: ScriptedModel;
let daemon: Awaited<ReturnType<typeof startRalphd>>;
let home: string;
let root: string;
let decoyHome: string;
let workspace: string;
const decoyConnections: string[] = [];
const allowedRequests: string[] = [];
const servers: { close(): unknown }[] = [];
let decoyPort: number;
let allowedPort: number;
const fixtures: Fixture[] = [];

const listen = async <S extends Server | ReturnType<typeof createHttpServer>>(server: S, where: number | string = 0): Promise<S> => {
  await new Promise<void>((r) => (typeof where === "string" ? server.listen(where, r) : server.listen(where, "127.0.0.1", r)));
  servers.push(server);
  return server;
};
const portOf = (s: { address(): unknown }) => (s.address() as AddressInfo).port;
const sha = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");

before(async () => {
  Object.assign(process.env, gitEnv);
  root = mkdtempSync(join(tmpdir(), "ralph-sandbox-"));
  network = await startTestNetwork("ralph-sandbox");
  home = network.home;
  workspace = join(home, "daemon", "workspace");
  // The daemon user's home: an SSH key and a git config an agent would love to have.
  decoyHome = join(root, "daemon-home");
  mkdirSync(join(decoyHome, ".ssh"), { recursive: true });
  writeFileSync(join(decoyHome, ".ssh", "id_ed25519"), `-----BEGIN OPENSSH PRIVATE KEY-----\n${SSH_SECRET}\n`, { mode: 0o600 });
  // Another loop's worktree and opencode socket, as the agent would find them beside its own.
  mkdirSync(join(workspace, "loops", "deadbeef"), { recursive: true });
  writeFileSync(join(workspace, "loops", "deadbeef", "secret.txt"), OTHER_SECRET);
  mkdirSync(join(workspace, "state", "deadbeef", "box", "run"), { recursive: true });
  await listen(createServer((s) => (decoyConnections.push("other loop's opencode"), s.destroy())), join(workspace, "state", "deadbeef", "box", "run", "opencode.sock"));
  decoyPort = portOf(await listen(createServer((s) => (decoyConnections.push("decoy port"), s.destroy()))));
  allowedPort = portOf(await listen(createHttpServer((req, res) => (allowedRequests.push(req.url ?? ""), res.end("ok")))));
  model = await startScriptedModel({ script: { kind: "ralph-agent" } });
  offerScriptedModel(home, model.baseUrl, { maxConcurrentLoops: 2 });
  // Its own HOME, as an operator's daemon user has; the built helpers stay where they are.
  daemon = await startRalphd(home, { HOME: decoyHome, RALPH_CACHE_DIR: cacheDir(), RALPH_TEST_DAEMON_SECRET: ENV_SECRET });
});

after(async () => {
  await stopRalphd(daemon);
  await model?.close();
  for (const s of servers) s.close();
  await network?.stop();
  for (const f of fixtures) f.cleanup();
  if (root) rmSync(root, { recursive: true, force: true });
});

/** Files the attacker is pointed at, with their content's hash now. */
function decoys(extra: Record<string, string> = {}): { reads: Record<string, string>; hashes: Map<string, string> } {
  const reads: Record<string, string> = {
    "the network's admin password": join(home, "ziti", "admin-password"),
    "the daemon's identity (its private key)": network.net.daemonIdentityFile,
    "the client's identity": network.net.clientIdentityFile,
    "the daemon's config": join(home, "daemon", "config.json"),
    "the daemon's state (opencode passwords)": join(home, "daemon", "state.db"),
    "another loop's worktree": join(workspace, "loops", "deadbeef", "secret.txt"),
    "the daemon user's SSH key": join(decoyHome, ".ssh", "id_ed25519"),
    "/etc/shadow": "/etc/shadow",
    ...extra,
  };
  return { reads, hashes: new Map(Object.values(reads).filter(existsSync).map((f) => [f, sha(f)])) };
}

/** What no request to the model may ever carry: every decoy's content. */
function secrets(files: string[]): string[] {
  const fromFiles = files.filter(existsSync).flatMap((f) => {
    const text = readFileSync(f, "utf8");
    // An identity's key, a password: long runs of its content, not its JSON punctuation.
    return text.match(/[A-Za-z0-9+=_-]{24,}/g) ?? [];
  });
  return [...new Set([...fromFiles, SSH_SECRET, OTHER_SECRET, ENV_SECRET])];
}

/** Every file under `dir` (not following links) whose name carries the token. */
function planted(dir: string, skip: string[] = [], depth = 6): string[] {
  if (depth < 0 || skip.includes(dir)) return [];
  let entries: import("node:fs").Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((e) => {
    const p = join(dir, e.name);
    if (e.name.includes(TOKEN)) return [p];
    return e.isDirectory() ? planted(p, skip, depth - 1) : [];
  });
}

/** The checks every attack run shares: each attempt refused, and nothing changed, leaked or left running outside. */
async function assertContained(opts: { report: AttackReport | undefined; hashes: Map<string, string>; worktree: string; alive: Record<string, number>; events: { type: string; host?: string; port?: number }[] }) {
  const { report } = opts;
  assert.ok(report, "the attack ran and reported");
  const expectReached = ["reach the allowed host through the proxy", "start a process that outlives the loop"];
  const listings = Object.keys(report).filter((k) => k.startsWith("list "));
  for (const [attempt, outcome] of Object.entries(report)) {
    if (expectReached.includes(attempt) || listings.includes(attempt)) continue;
    assert.match(outcome, /^refused: /, `inside, "${attempt}" was refused (got: ${outcome})`);
  }
  for (const [attempt, outcome] of Object.entries(report).filter(([k]) => listings.includes(k))) {
    // A directory on the way to the worktree exists inside, holding that way only.
    assert.ok(/^refused: /.test(outcome) || /^SUCCEEDED: [a-z0-9.,_-]*$/.test(outcome), `${attempt}: ${outcome}`);
    assert.ok(!/deadbeef|ziti|client|state\.db|config\.json|\.ssh/.test(outcome), `${attempt} shows nothing but the way to the worktree: ${outcome}`);
  }
  assert.match(report["reach the allowed host through the proxy"] ?? "", /^SUCCEEDED: HTTP 200/);
  // From outside: the decoys, the ports, the processes, the file system.
  for (const [file, hash] of opts.hashes) assert.equal(sha(file), hash, `${file} is unchanged`);
  const received = model.received();
  for (const s of secrets([...opts.hashes.keys()])) assert.ok(!received.includes(s), "no decoy's content reached the model (the agent's way out)");
  assert.deepEqual(decoyConnections, [], "the decoy port and the other loop's socket recorded no connection");
  assert.ok(allowedRequests.includes("/allowed"), "the allowlisted host was reached, through the proxy");
  for (const [what, pid] of Object.entries(opts.alive)) assert.ok(pidAlive(pid), `${what} (pid ${pid}) is alive`);
  const found = [...planted(root, [opts.worktree]), ...planted(home, [opts.worktree]), ...planted(tmpdir(), [root, home], 1), ...planted("/usr", [], 0)];
  assert.deepEqual(found, [], "no file appeared outside the worktree");
  assert.ok(!readFileSync(join(opts.worktree, ".git", "config"), "utf8").includes(TOKEN), "git's config is as it was");
  assert.ok(!existsSync(join(opts.worktree, ".git", "hooks", "pre-push")), "no hook was planted");
  assert.ok(!existsSync(join(tmpdir(), TOKEN)), "and so none ran");
  await waitFor(() => findProcesses((argv) => argv.some((a) => a.includes(TOKEN))).length === 0, { what: "nothing the agent started to outlive the loop", timeoutMs: 10_000 });
  const refusedTo = opts.events.filter((e) => e.type === "sandbox.refused").map((e) => `${e.host}:${e.port}`);
  assert.ok(refusedTo.includes(`127.0.0.1:${decoyPort}`), `the refused decoy port is in the events (${refusedTo.join(", ")})`);
  assert.ok(refusedTo.includes("example.com:443"), "and so is the host off the allowlist");
}

function targets(opts: { reads: Record<string, string>; worktreeParent: string; sockets: Record<string, string>; pids: Record<string, number>; writes: Record<string, string> }): AttackTargets {
  return {
    reads: opts.reads,
    lists: { "RALPH_HOME": home, "the loops beside it": opts.worktreeParent, "the daemon user's home": decoyHome },
    writes: opts.writes,
    gitFiles: { "git's config": ".git/config" },
    decoy: { host: "127.0.0.1", port: decoyPort },
    allowed: { host: "127.0.0.1", port: allowedPort },
    outside: { host: "example.com", port: 443 },
    sockets: opts.sockets,
    pids: opts.pids,
    envNames: ["RALPH_TEST_DAEMON_SECRET", "RALPH_HOME"],
    token: TOKEN,
  };
}

async function eventsOf(id: string): Promise<StreamEvent[]> {
  const events: StreamEvent[] = [];
  const client = await ControlClient.open();
  try {
    await streamEvents(client, { loopId: id, follow: false, onEvent: (e) => events.push(e) });
  } finally {
    await client.close();
  }
  return events;
}

const loopStatus = async (id: string) => JSON.parse((await ralph(home, ["status", id, "--json"])).stdout) as { status: string; reason?: string };

test("a prompt-injected agent under ralphd reaches its worktree, its model and its allowlist, nothing else; its story is still done, committed and pushed", async () => {
  const projectRoot = join(root, "project");
  const project = makeProject(projectRoot, ["ralph/hostile"], (b) => ({ branchName: b, userStories: [{ id: "A1", title: "The only story", priority: 1 }] }));
  const { reads, hashes } = decoys();
  const hostHelper = findProcesses((argv) => /ralph-ziti-host/.test(argv[0] ?? "") && argv.includes(network.net.daemonIdentityFile))[0]!;
  model.setScript({
    kind: "ralph-agent",
    firstWhen: "ralph/hostile",
    first: attackCommand(
      targets({
        reads,
        worktreeParent: join(workspace, "loops"),
        writes: { "beside its worktree": join(workspace, "loops", `${TOKEN}`), "into RALPH_HOME": join(home, TOKEN), "into the daemon user's home": join(decoyHome, TOKEN) },
        sockets: { "ralphd's control API": join(home, "daemon", "run", "control.sock"), "another loop's opencode": join(workspace, "state", "deadbeef", "box", "run", "opencode.sock"), "the client agent": join(home, "client", "agent", "agent.sock") },
        pids: { ralphd: daemon.pid, "the Ziti host helper": hostHelper, "the OpenZiti network": network.net.pid, "the test itself": process.pid },
      }),
    ),
  });
  execFileSync("git", ["switch", "-q", "ralph/hostile"], { cwd: project.repo });
  const started = await ralph(home, ["start", "task", "--allow-net", `127.0.0.1:${allowedPort}`], project.repo);
  assert.equal(started.code, 0, started.stderr);
  const id = started.stdout.trim();
  await waitFor(async () => (await loopStatus(id)).status !== "running" && (await loopStatus(id)).status !== "starting", { what: "the hostile loop to end", timeoutMs: 180_000, intervalMs: 500 });
  const status = await loopStatus(id);
  assert.equal(status.status, "completed", status.reason);
  const events = await eventsOf(id);
  const sandbox = events.find((e) => e.type === "opencode.started");
  assert.ok(sandbox?.type === "opencode.started" && sandbox.sandbox.mode === "on" && sandbox.sandbox.allowNet?.includes(`127.0.0.1:${allowedPort}`), "it ran in a sandbox with the owner's allowlist");
  await assertContained({
    report: reportIn(model.toolOutputs()),
    hashes,
    worktree: join(workspace, "loops", id),
    alive: { ralphd: daemon.pid, "the Ziti host helper": hostHelper, "the OpenZiti network": network.net.pid },
    events: events as { type: string; host?: string; port?: number }[],
  });
  // The work itself went through: committed in the sandbox, pushed by the daemon.
  const subjects = execFileSync("git", ["--git-dir", project.origin, "log", "--format=%s", "main..ralph/hostile"]).toString();
  assert.match(subjects, /feat: \[A1\]/);
  assert.ok(events.some((e) => e.type === "loop.pushed"));
});

test("the same agent under ralph run reaches its repository, its model and its allowlist, nothing else; its stories are still done and committed", async () => {
  const f = makeRepo(model.baseUrl, {
    project: "hostile",
    branchName: "ralph/hostile-local",
    userStories: [{ id: "S1", title: "The only story", description: "one", acceptanceCriteria: ["a file exists"], priority: 1, passes: false }],
  });
  fixtures.push(f);
  const beside = makeRepo(model.baseUrl);
  fixtures.push(beside);
  writeFileSync(join(beside.repo, "secret.txt"), OTHER_SECRET);
  const runHome = join(root, "run-home");
  const { reads, hashes } = decoys({ "another repository beside it": join(beside.repo, "secret.txt") });
  const child = spawn(process.execPath, [cli, "run", f.taskDir, "--json", "--allow-net", `127.0.0.1:${allowedPort}`], {
    env: { ...process.env, RALPH_HOME: runHome, HOME: decoyHome, RALPH_CACHE_DIR: cacheDir(), RALPH_TEST_DAEMON_SECRET: ENV_SECRET },
    stdio: ["ignore", "pipe", "pipe"],
  });
  model.setScript({
    kind: "ralph-agent",
    firstWhen: "ralph/hostile-local",
    first: attackCommand(
      targets({
        reads,
        worktreeParent: f.root,
        writes: { "beside its repository": join(f.root, TOKEN), "into its RALPH_HOME": join(runHome, TOKEN), "into the user's home": join(decoyHome, TOKEN) },
        sockets: { "ralphd's control API": join(home, "daemon", "run", "control.sock"), "the client agent": join(home, "client", "agent", "agent.sock") },
        pids: { ralphd: daemon.pid, "ralph run itself": child.pid!, "the test itself": process.pid },
      }),
    ),
  });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d));
  child.stderr!.on("data", (d: Buffer) => (err += d));
  const code = await new Promise<number | null>((r) => child.on("exit", r));
  assert.equal(code, 0, err);
  const events = out.trim().split("\n").map((l) => JSON.parse(l) as LoopEvent);
  const started = events.find((e) => e.type === "opencode.started");
  assert.ok(started?.type === "opencode.started" && started.sandbox.mode === "on");
  await assertContained({ report: reportIn(model.toolOutputs().filter((o) => o.includes("ralph run itself"))), hashes, worktree: f.repo, alive: { ralphd: daemon.pid }, events });
  assert.match(git(f.repo, "log", "--format=%s", "ralph/hostile-local"), /feat: \[S1\]/);
});
