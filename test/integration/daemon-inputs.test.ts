// What the control API and the CLI must refuse or survive, against a real
// ralphd over a real OpenZiti network: bad event-stream positions, many
// followers at once, wrong HTTP methods, output to a closed pipe.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import fc from "fast-check";
import { localManagementClient } from "../../src/ziti/network.js";
import { ControlClient } from "../../src/client/connection.js";
import { expectOk } from "../../src/client/api.js";
import { sseMessages } from "../../src/util/sse.js";
import { agentStatus, raw } from "../support/control.js";
import { startScriptedModel, type ScriptedModel } from "../../src/model/scripted-model.js";
import { findProcesses } from "../../src/process/proc-scan.js";
import { waitFor } from "../../src/util/wait.js";
import { startTestNetwork } from "../support/ziti-network.js";
import { cli, makeProject, ralph, ralphdScript, offerScriptedModel, startRalphd, stopRalphd } from "../support/daemon-harness.js";
import { gitEnv } from "../support/loop-fixtures.js";

let network: Awaited<ReturnType<typeof startTestNetwork>>;
let model: ScriptedModel;
let daemon: Awaited<ReturnType<typeof startRalphd>>;
let client: ControlClient;
let home: string;
let project: { repo: string; origin: string };
let projectRoot: string | undefined;
/** A loop that has completed, so the daemon has events and `ralph ls` has lines. */
let doneLoop: string;

async function startLoop(branch: string): Promise<string> {
  execFileSync("git", ["switch", "-q", branch], { cwd: project.repo });
  const r = await ralph(home, ["start", "task"], project.repo);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

const waitCompleted = (id: string) =>
  waitFor(async () => JSON.parse((await ralph(home, ["status", id, "--json"])).stdout).status === "completed", {
    what: `loop ${id} to complete`,
    timeoutMs: 180_000,
    intervalMs: 500,
  });

before(async () => {
  Object.assign(process.env, gitEnv);
  network = await startTestNetwork("ralph-inputs");
  home = network.home;
  model = await startScriptedModel({ script: { kind: "ralph-agent" } });
  offerScriptedModel(home, model.baseUrl, { maxConcurrentLoops: 2 });
  projectRoot = mkdtempSync(join(tmpdir(), "ralph-project-"));
  project = makeProject(projectRoot, ["ralph/one", "ralph/two"]);
  daemon = await startRalphd(home);
  client = await ControlClient.open();
  doneLoop = await startLoop("ralph/one");
  await waitCompleted(doneLoop);
});

after(async () => {
  await client?.close();
  await stopRalphd(daemon);
  await model?.close();
  await network?.stop();
  if (projectRoot) rmSync(projectRoot, { recursive: true, force: true });
});

interface Follower {
  status: number;
  messages: { event: string; data: string }[];
  close(): void;
}

/** Opens GET /events and collects its SSE messages in the background until closed. */
async function follow(query: string, headers: Record<string, string> = {}): Promise<Follower> {
  const ctrl = new AbortController();
  const res = await client.fetch(`${client.baseUrl}/events${query}`, { headers, signal: ctrl.signal });
  const messages: Follower["messages"] = [];
  if (res.ok) {
    void (async () => {
      for await (const m of sseMessages(res.body!)) if (m.data) messages.push({ event: m.event ?? "", data: m.data });
    })().catch(() => undefined);
  } else {
    messages.push({ event: "error", data: await res.text() });
  }
  return { status: res.status, messages, close: () => ctrl.abort() };
}

const caughtUp = (f: Follower) => f.messages.find((m) => m.event === "caught-up");

/** The events a position replays, and the seq the stream says it caught up at. */
async function replay(query: string, headers: Record<string, string> = {}): Promise<{ seqs: number[]; caughtUpAt: number }> {
  const f = await follow(query, headers);
  assert.equal(f.status, 200, f.messages[0]?.data);
  try {
    const done = await waitFor(() => caughtUp(f), { what: `caught-up on /events${query}`, timeoutMs: 30_000 });
    return { seqs: f.messages.filter((m) => !m.event).map((m) => (JSON.parse(m.data) as { seq: number }).seq), caughtUpAt: (JSON.parse(done.data) as { seq: number }).seq };
  } finally {
    f.close();
  }
}

const health = () => expectOk(client.remoteName, client.api.health.$get());
const loopList = async () => (await expectOk(client.remoteName, client.api.loops.$get())).loops;

test("event-stream positions must be whole numbers up to the newest event; valid ones replay from there", async () => {
  const newest = (await replay("?after=0")).caughtUpAt;
  assert.ok(newest > 3, "the completed loop left events");
  for (const bad of ["1e20", "0x1c", "", "-1", "1.5", "+1", "1 ", String(newest + 1), "9".repeat(30)]) {
    const ways = [
      ["after", `?after=${encodeURIComponent(bad)}`, {}],
      // HTTP trims a header's value, so "1 " arrives as "1".
      ...(bad === bad.trim() ? [["Last-Event-ID", "?after=0", { "last-event-id": bad }] as const] : []),
    ] as const;
    for (const [name, query, headers] of ways) {
      const f = await follow(query, headers);
      f.close();
      assert.equal(f.status, 400, `${name} ${JSON.stringify(bad)} is refused`);
      const { error } = JSON.parse(f.messages[0]!.data) as { error: { code: string; message: string } };
      assert.equal(error.code, "invalid_request");
      assert.equal(error.message, `${name} must be a whole number from 0 to ${newest} (the newest event), not ${JSON.stringify(bad)}`);
    }
  }
  assert.deepEqual(await replay(`?after=${newest}`), { seqs: [], caughtUpAt: newest });
  assert.deepEqual(await replay(`?after=${newest - 2}`), { seqs: [newest - 1, newest], caughtUpAt: newest });
  assert.deepEqual(await replay("?after=0", { "last-event-id": String(newest - 1) }), { seqs: [newest], caughtUpAt: newest }, "Last-Event-ID wins over after");
  assert.deepEqual(await replay(`?after=${newest - 1}&loop=${doneLoop}`), { seqs: [newest], caughtUpAt: newest });
});

test("many concurrent followers all get live events, print no MaxListeners warning, and leave no listener behind", async () => {
  // The followers of earlier tests have hung up; their listeners go a moment later.
  const before = await waitFor(async () => {
    const h = await health();
    return h.followers.active === 0 ? h : undefined;
  }, { what: "earlier tests' followers to be gone", timeoutMs: 30_000, intervalMs: 100 });
  const newest = (await replay("?after=0")).caughtUpAt;
  const followers = await Promise.all(Array.from({ length: 20 }, () => follow(`?after=${newest}`)));
  try {
    assert.deepEqual(followers.map((f) => f.status), Array(20).fill(200));
    await waitFor(() => followers.every(caughtUp), { what: "every follower to catch up", timeoutMs: 30_000 });
    assert.doesNotMatch(daemon.log(), /MaxListeners/);
    assert.equal((await health()).followers.active, before.followers.active + 20);
    const id = await startLoop("ralph/two");
    const sawLoop = (f: Follower) => f.messages.some((m) => !m.event && (JSON.parse(m.data) as { loopId: string }).loopId === id);
    await waitFor(() => followers.every(sawLoop), { what: "every follower to get the new loop's live events", timeoutMs: 60_000 });
    await waitCompleted(id);
  } finally {
    for (const f of followers) f.close();
  }
  await waitFor(async () => (await health()).followers.active === before.followers.active, { what: "the followers' listeners to be removed", timeoutMs: 60_000, intervalMs: 250 });
  assert.doesNotMatch(daemon.log(), /MaxListeners/);
});

test("followers beyond the cap are refused as busy, and the cap frees up when they leave", async () => {
  const { followers: count } = await health();
  assert.ok(count.max >= 20, `the cap (${count.max}) leaves room for many followers`);
  const followers = await Promise.all(Array.from({ length: count.max - count.active }, () => follow("?after=0")));
  try {
    assert.ok(followers.every((f) => f.status === 200));
    const refused = await follow("?after=0");
    assert.equal(refused.status, 503);
    assert.match(refused.messages[0]!.data, new RegExp(`"code":"busy".*already streams events to ${count.max} followers`));
  } finally {
    for (const f of followers) f.close();
  }
  await waitFor(async () => (await health()).followers.active === count.active, { what: "the followers' listeners to be removed", timeoutMs: 60_000, intervalMs: 250 });
  const welcome = await follow("?after=0");
  welcome.close();
  assert.equal(welcome.status, 200, "a follower is welcome again");
  assert.doesNotMatch(daemon.log(), /MaxListeners/);
});

test("a wrong method on a known path gets 405 with Allow; unknown paths stay 404", async () => {
  const cases: [string, string, string][] = [
    ["DELETE", "/loops", "GET, HEAD, POST"],
    ["GET", `/loops/${doneLoop}/stop`, "POST"],
    ["PUT", "/events", "GET, HEAD"],
    ["POST", "/health", "GET, HEAD"],
    ["PATCH", `/loops/${doneLoop}`, "DELETE, GET, HEAD"],
    ["GET", "/notify/test", "POST"],
    ["DELETE", `/loops/${doneLoop}/say`, "POST"],
  ];
  for (const [method, path, allow] of cases) {
    const res = await client.fetch(`${client.baseUrl}${path}`, { method });
    assert.equal(res.status, 405, `${method} ${path}`);
    assert.equal(res.headers.get("allow"), allow, `${method} ${path}`);
    assert.deepEqual(await res.json(), { error: { code: "method_not_allowed", message: `${method} is not allowed on ${path}: it takes ${allow}` } });
  }
  for (const method of ["GET", "DELETE"]) {
    const res = await client.fetch(`${client.baseUrl}/nowhere`, { method });
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, "not_found");
  }
  const wrong = await raw(client, "GET", `/loops/${doneLoop}/stop`);
  assert.equal(wrong.status, 405);
  assert.match(wrong.json.error.message, /GET is not allowed/);
  const loops = await loopList();
  assert.ok(loops.every((l) => l.status === "completed"), "no refused request changed a loop");
});

test("output to a closed pipe ends quietly with status 0, and the commands leave no dialer of their own", async () => {
  const sh = (script: string) =>
    new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile("bash", ["-c", `set -o pipefail; ${script}`], { env: { ...process.env, RALPH_HOME: home } }, (err, _stdout, stderr) =>
        resolve({ code: (err as { code?: number } | null)?.code ?? 0, stderr }),
      ),
    );
  const ralphCmd = `'${process.execPath}' '${cli}'`;
  // head -n 0 exits without reading, so the pipe is closed before the first write.
  for (const script of [
    `${ralphCmd} ls | head -1`,
    `${ralphCmd} ls | head -n 0`,
    `${ralphCmd} ls --json | head -n 0`,
    `${ralphCmd} logs ${doneLoop} | head -n 0`,
    `${ralphCmd} --help | head -n 0`,
    `'${process.execPath}' '${ralphdScript}' check | head -n 0`,
  ]) {
    const r = await sh(script);
    assert.deepEqual(r, { code: 0, stderr: "" }, script);
  }
  const agent = await agentStatus(home);
  assert.ok(agent.running);
  const dialers = () =>
    findProcesses((argv) => basename(argv[0] ?? "").startsWith("ralph-ziti-dial") && argv.includes(network.net.clientIdentityFile)).filter((pid) => !agent.dialers.some((d) => d.pid === pid));
  await waitFor(() => dialers().length === 0, { what: "no dialer left by the commands but the agent's", timeoutMs: 10_000 });
});

/** What a refused request must leave as it was: loops, the workspace's mirrors and worktrees, the network's services, a decoy outside. */
async function snapshot(decoy: string): Promise<string> {
  const loops = (await loopList()).map((l) => `${l.id}:${l.status}`);
  const workspace = join(home, "daemon", "workspace");
  const tree = readdirSync(workspace, { recursive: true, encoding: "utf8" }).filter((p) => p.split("/").length <= 2).sort();
  const mgmt = await localManagementClient();
  try {
    const services = (await mgmt.listNames("services")).map((s) => s.name).sort();
    const d = statSync(decoy);
    return JSON.stringify({ loops, tree, services, decoy: [readFileSync(decoy, "utf8"), d.mtimeMs, readdirSync(dirname(decoy)).sort()] });
  } finally {
    await mgmt.close();
  }
}

test("generated hostile requests each get a 4xx with a clear message and change nothing", async () => {
  const decoyDir = mkdtempSync(join(tmpdir(), "ralph-decoy-"));
  const decoy = join(decoyDir, "secret.txt");
  writeFileSync(decoy, "decoy-secret-7f3a\n");
  const before = await snapshot(decoy);
  const valid = { origin: `file://${project.origin}`, branch: "ralph/two", taskDir: "task" };
  // The daemon's own files: its mirror of the project (a fetch from it would work), its home, its workspace.
  const mirrors = join(home, "daemon", "workspace", "repos");
  const ownFiles = [`file://${join(mirrors, readdirSync(mirrors)[0]!)}`, `file://${home}`, `file://${home}/daemon/workspace`, `file://${home}/../${basename(home)}/daemon`];
  // Refused by their form, or because git finds nothing there.
  const wrongForm = fc.oneof(fc.string({ maxLength: 40 }).map((s) => `-${s}`), fc.string({ minLength: 1, maxLength: 8 }).map((s) => `${s}\u0007`), fc.constantFrom("", "x\u0000y", "x\ny"));
  const hostileFor = {
    origin: fc.oneof(wrongForm, fc.constantFrom("--upload-pack=touch /tmp/pwned", "ext::sh -c id", "fd::0", "/etc/passwd", decoyDir, "~/.ssh", "@{-1}", " ", `file://${decoyDir}/no-such.git`, `file://${decoyDir}`, `file://localhost${project.origin}`, `file://${project.origin.replace("origin", "%6frigin")}`, ...ownFiles)),
    branch: fc.oneof(wrongForm, fc.constantFrom("@{-1}", "HEAD@{1}", "a..b", "~/.ssh", "/etc/passwd", "../../etc", "fd::0", " ")),
    taskDir: fc.oneof(wrongForm, fc.constantFrom("../../etc", "/etc/passwd", decoyDir, "task/../../..", "no/such/dir", "README.md", "@{-1}", " ")),
  };
  const notAString = fc.oneof(fc.integer({ min: -1e6, max: 1e6 }), fc.double(), fc.constant(null), fc.array(fc.string(), { maxLength: 3 }), fc.object({ maxDepth: 1 }), fc.boolean());
  const numericField = fc.constantFrom("maxIterations", "iterationTimeoutSeconds", "stallTimeoutSeconds", "maxCostUsd", "maxTokens");
  // Wrong for every numeric field: not positive, over every maximum, or not a number.
  const hostileNumber = fc.oneof(fc.constant(-1), fc.constant(0), fc.constant(1e13), fc.constant(1e308), fc.string(), fc.constant(true));
  const badStart = fc.oneof(
    fc.constantFrom("origin", "branch", "taskDir").chain((field) => hostileFor[field].map((value) => ({ ...valid, [field]: value }))),
    fc.record({ field: fc.constantFrom("origin", "branch", "taskDir", "model"), value: notAString }).map(({ field, value }) => ({ ...valid, [field]: value })),
    fc.record({ field: numericField, value: hostileNumber }).map(({ field, value }) => ({ ...valid, [field]: value })),
    fc.record({ key: fc.string({ minLength: 1, maxLength: 10 }).filter((k) => !["origin", "branch", "taskDir", "maxIterations", "model", "iterationTimeoutSeconds", "stallTimeoutSeconds", "maxCostUsd", "maxTokens"].includes(k)), value: fc.jsonValue() }).map(({ key, value }) => ({ ...valid, [key]: value })),
    fc.constantFrom<unknown>(null, [], "x", 42, {}),
  );
  const send = async (method: string, path: string, body?: string) => {
    const res = await client.fetch(`${client.baseUrl}${path}`, { method, headers: body === undefined ? {} : { "content-type": "application/json" }, body });
    const text = await res.text();
    return { status: res.status, text };
  };
  const refusedClearly = ({ status, text }: { status: number; text: string }, what: string) => {
    assert.ok(status >= 400 && status < 500, `${what}: ${status} ${text.slice(0, 200)}`);
    const message = (JSON.parse(text) as { error?: { message?: unknown } }).error?.message;
    assert.ok(typeof message === "string" && message.length > 0 && message.length < 600, `${what}: a clear message, not ${text.slice(0, 200)}`);
    assert.ok(!/\n\s+at /.test(message) && !message.includes("decoy-secret"), `${what}: no stack, no file content`);
  };
  await fc.assert(
    fc.asyncProperty(badStart, async (body) => refusedClearly(await send("POST", "/loops", JSON.stringify(body)), `POST /loops ${JSON.stringify(body).slice(0, 120)}`)),
    { numRuns: 80 },
  );
  await fc.assert(
    fc.asyncProperty(fc.string({ maxLength: 60 }).filter((s) => { try { JSON.parse(s); return false; } catch { return true; } }), async (raw) => refusedClearly(await send("POST", "/loops", raw), `POST /loops raw ${JSON.stringify(raw)}`)),
    { numRuns: 30 },
  );
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(fc.string({ maxLength: 12 }).filter((s) => !/^\d+$/.test(s)), fc.constant(String(Number.MAX_SAFE_INTEGER)), fc.integer({ min: 1e9, max: 2e9 }).map(String)),
      async (after) => refusedClearly(await send("GET", `/events?after=${encodeURIComponent(after)}`), `GET /events?after=${after}`),
    ),
    { numRuns: 30 },
  );
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom("PUT", "DELETE", "PATCH"),
      fc.constantFrom("/loops", `/loops/${doneLoop}`, `/loops/${doneLoop}/stop`, "/events", "/health", "/prune"),
      // DELETE /loops/ID is 'ralph rm': not a wrong method.
      async (method, path) => (method === "DELETE" && path === `/loops/${doneLoop}` ? undefined : refusedClearly(await send(method, path), `${method} ${path}`)),
    ),
    { numRuns: 15 },
  );
  await fc.assert(
    fc.asyncProperty(fc.string({ minLength: 1, maxLength: 20 }).filter((id) => id !== doneLoop), fc.constantFrom("stop", "say", "attach", "rm"), async (id, action) => {
      const path = `/loops/${encodeURIComponent(id)}${action === "rm" ? "" : `/${action}`}`;
      const method = { attach: "GET", rm: "DELETE", stop: "POST", say: "POST" }[action];
      refusedClearly(await send(method, path, action === "say" ? JSON.stringify({ text: "hello" }) : undefined), `${action} ${id}`);
    }),
    { numRuns: 30 },
  );
  assert.equal(await snapshot(decoy), before, "no loop, mirror, worktree, service or outside file changed");
  rmSync(decoyDir, { recursive: true, force: true });
});
