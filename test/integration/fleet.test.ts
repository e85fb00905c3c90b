// Many daemons, one client: two ralphd on one real network (each its own
// identity, home and workspace), driven by one client through its agent.
// `ralph ls` spans both, loop ids find their daemon, `--remote any` picks
// the one with room, a daemon that is down is reported without failing the
// rest, and the client agent is shared by concurrent commands and exits
// when idle.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { startScriptedModel, type ScriptedModel } from "../../src/model/scripted-model.js";
import { pidAlive } from "../../src/process/supervisor.js";
import { waitFor } from "../../src/util/wait.js";
import { ExitCode } from "../../src/cli/exit-codes.js";
import { startTestNetwork } from "../support/ziti-network.js";
import { makeProject, ralph, offerScriptedModel, startRalphd, stopRalphd } from "../support/daemon-harness.js";
import { agentStatus } from "../support/control.js";
import { gitEnv } from "../support/loop-fixtures.js";

let network: Awaited<ReturnType<typeof startTestNetwork>>;
let model: ScriptedModel;
let home: string;
let secondHome: string;
let local: Awaited<ReturnType<typeof startRalphd>> | undefined;
let second: Awaited<ReturnType<typeof startRalphd>> | undefined;
let projectRoot: string;
let project: { repo: string; origin: string };

const ralphd = (homeDir: string, args: string[]) =>
  execFileSync(process.execPath, [join(process.cwd(), "dist", "cli", "ralphd.js"), ...args], { env: { ...process.env, RALPH_HOME: homeDir } }).toString();

before(async () => {
  Object.assign(process.env, gitEnv);
  network = await startTestNetwork("ralph-fleet");
  home = network.home;
  model = await startScriptedModel({ script: { kind: "hang" } });
  // "local" takes one loop at a time, "second" two: --remote any must prefer the one with room.
  offerScriptedModel(home, model.baseUrl, { maxConcurrentLoops: 1 });
  secondHome = mkdtempSync(join(tmpdir(), "ralph-fleet-second-"));
  const token = JSON.parse((await ralph(home, ["ziti", "identity", "create", "second", "--role", "daemon", "--json"])).stdout) as { tokenFile: string };
  ralphd(secondHome, ["join", "--token", token.tokenFile]);
  offerScriptedModel(secondHome, model.baseUrl, { maxConcurrentLoops: 2 });
  projectRoot = mkdtempSync(join(tmpdir(), "ralph-fleet-project-"));
  project = makeProject(projectRoot, ["ralph/a", "ralph/b", "ralph/c"]);
  [local, second] = [await startRalphd(home), await startRalphd(secondHome)];
  const added = await ralph(home, ["remote", "add", "second", "--identity", network.net.clientIdentityFile, "--service", "ralph-control-second"]);
  assert.equal(added.code, 0, added.stderr);
});

after(async () => {
  await stopRalphd(local);
  await stopRalphd(second);
  await model?.close();
  await network?.stop();
  rmSync(secondHome, { recursive: true, force: true });
  rmSync(projectRoot, { recursive: true, force: true });
});

async function start(branch: string, remote: string): Promise<{ id: string; stderr: string }> {
  execFileSync("git", ["switch", "-q", branch], { cwd: project.repo });
  const r = await ralph(home, ["start", "task", "--remote", remote], project.repo);
  assert.equal(r.code, 0, r.stderr);
  return { id: r.stdout.trim(), stderr: r.stderr };
}

let onLocal: string;
let onSecond: string;

test("--remote any places a loop on the reachable daemon with the most free slots and says which", async () => {
  onLocal = (await start("ralph/a", "local")).id;
  const placed = await start("ralph/b", "any");
  onSecond = placed.id;
  assert.match(placed.stderr, /placing the loop on remote "second" \(2 of 2 slots free\)/);
  const status = JSON.parse((await ralph(home, ["status", onSecond, "--json", "--remote", "second"])).stdout) as { id: string };
  assert.equal(status.id, onSecond, "the loop runs on second");
});

test("ralph ls with no --remote lists the loops of every remote, each with its remote", async () => {
  const r = await ralph(home, ["ls", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const loops = JSON.parse(r.stdout) as { id: string; remote: string }[];
  assert.deepEqual(loops.map((l) => `${l.remote}:${l.id}`).sort(), [`local:${onLocal}`, `second:${onSecond}`].sort());
  const text = await ralph(home, ["ls"]);
  assert.match(text.stdout, new RegExp(`^local\\s+${onLocal}\\s`, "m"));
  assert.match(text.stdout, new RegExp(`^second\\s+${onSecond}\\s`, "m"));
});

test("loop ids find their remote without --remote; an id no remote has is not found", async () => {
  for (const [id, remote] of [[onLocal, "local"], [onSecond, "second"]] as const) {
    const r = await ralph(home, ["status", id, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { id: string }).id, id, `status of ${id} from ${remote}`);
  }
  const missing = await ralph(home, ["status", "nosuchloop"]);
  assert.equal(missing.code, ExitCode.NotFound, missing.stderr);
  assert.match(missing.stderr, /no loop "nosuchloop" on local, second/);
});

test("concurrent commands share the agent: one dialer per remote, every command answered", async () => {
  const runs = await Promise.all(Array.from({ length: 6 }, () => ralph(home, ["ls", "--json"])));
  for (const r of runs) assert.equal(r.code, 0, r.stderr);
  const agent = await agentStatus(home);
  assert.ok(agent.running);
  assert.deepEqual(agent.dialers.map((d) => d.label).sort(), ["local", "second"]);
});

test("a daemon that is down is reported in the listing, not fatal; its loops' ids still resolve elsewhere", async () => {
  await stopRalphd(second);
  second = undefined;
  const r = await ralph(home, ["ls", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual((JSON.parse(r.stdout) as { id: string }[]).map((l) => l.id), [onLocal]);
  assert.match(r.stderr, /warning: remote "second" could not be listed: cannot reach ralph-control-second on remote "second": nothing hosts service ralph-control-second/);
  const status = await ralph(home, ["status", onLocal]);
  assert.equal(status.code, 0, status.stderr);
  const only = await ralph(home, ["ls", "--remote", "second"]);
  assert.equal(only.code, ExitCode.Unavailable);
  assert.equal((await ralph(home, ["stop", onLocal])).code, 0);
});

test("the client agent exits after its idle period, and its dialers and sockets go with it", async () => {
  assert.equal((await ralph(home, ["agent", "stop"])).code, 0);
  const env = process.env.RALPH_AGENT_IDLE_SECONDS;
  process.env.RALPH_AGENT_IDLE_SECONDS = "2";
  try {
    assert.equal((await ralph(home, ["ls", "--remote", "local"])).code, 0);
  } finally {
    if (env === undefined) delete process.env.RALPH_AGENT_IDLE_SECONDS;
    else process.env.RALPH_AGENT_IDLE_SECONDS = env;
  }
  const agent = await agentStatus(home);
  assert.ok(agent.running && agent.idleExitSeconds === 2, JSON.stringify(agent));
  const dialers = agent.dialers.map((d) => d.pid);
  assert.equal(dialers.length, 1);
  const dir = join(home, "client", "agent");
  await waitFor(() => !existsSync(join(dir, "agent.sock")), { what: "the idle agent to exit", timeoutMs: 30_000 });
  await waitFor(() => dialers.every((p) => !pidAlive(p)), { what: "its dialer to exit", timeoutMs: 10_000 });
  assert.deepEqual(readdirSync(dir), [], "no socket is left");
  assert.deepEqual(await agentStatus(home), { running: false });
});

test("a RALPH_HOME too long for socket paths still gets its agent, in a short private directory; a killed agent's sockets are cleared", async () => {
  // 110 bytes of RALPH_HOME: its own socket paths could not be bound.
  const longHome = join(projectRoot, "h".repeat(110 - projectRoot.length - 1));
  mkdirSync(join(longHome, "client"), { recursive: true });
  copyFileSync(join(home, "client", "remotes.json"), join(longHome, "client", "remotes.json"));
  const listed = await ralph(longHome, ["ls", "--remote", "local"]);
  assert.equal(listed.code, 0, listed.stderr);
  const agent = await agentStatus(longHome);
  assert.ok(agent.running && agent.dialers.length === 1, JSON.stringify(agent));
  const dir = dirname(agent.dialers[0]!.socket);
  assert.ok(dir.startsWith(join(tmpdir(), `ralph-remote-${process.getuid!()}`)), `the sockets are in a short directory of this user's: ${dir}`);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  // Killed outright: nothing of it removes its dialer's socket...
  process.kill(agent.pid, "SIGKILL");
  await waitFor(() => agent.dialers.every((d) => !pidAlive(d.pid)) && !pidAlive(agent.pid), { what: "the killed agent and its dialer to be gone", timeoutMs: 10_000 });
  assert.ok(readdirSync(dir).some((f) => f.startsWith("dial-")), "a killed agent leaves its dialer's socket");
  // ...until the next 'ralph agent stop' (or agent) clears it.
  const stopped = await ralph(longHome, ["agent", "stop"]);
  assert.equal(stopped.code, 0);
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith("dial-")), [], "no stale socket is left");
  rmSync(dir, { recursive: true, force: true });
});
