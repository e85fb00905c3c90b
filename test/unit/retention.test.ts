// Retention and reconciliation on real git and a real SQLite store: what a
// finished loop leaves, when it goes, and which mirrors stay.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DaemonConfigSchema } from "../../src/daemon/config.js";
import { LoopManager } from "../../src/daemon/manager.js";
import { Notifier } from "../../src/daemon/notify.js";
import { Retention } from "../../src/daemon/retention.js";
import { Store, type LoopState } from "../../src/daemon/store.js";
import { Workspace } from "../../src/daemon/workspace.js";
import { git } from "../support/loop-fixtures.js";

const root = mkdtempSync(join(tmpdir(), "ralph-retention-"));
after(() => rmSync(root, { recursive: true, force: true }));
const DAY = 86_400_000;

/** A bare origin with a branch holding task/prd.json. */
function origin(name: string): string {
  const bare = join(root, `${name}.git`);
  const work = join(root, `${name}-work`);
  git(root, "init", "-q", "--bare", bare);
  mkdirSync(join(work, "task"), { recursive: true });
  git(work, "init", "-q", "-b", "ralph/x");
  writeFileSync(join(work, "task", "prd.json"), "{}");
  git(work, "add", "-A");
  git(work, "commit", "-q", "-m", "prd");
  git(work, "push", "-q", bare, "ralph/x");
  return `file://${bare}`;
}

test("prune removes worktrees and logs of loops finished before the retention period, then mirrors no loop uses; 'forget' removes a loop at once", async () => {
  const ws = join(root, "ws");
  const store = new Store(join(root, "state.db"));
  const workspace = new Workspace(ws);
  const logs: string[] = [];
  const retention = new Retention(store, workspace, join(ws, "state"), 7, () => [], (l) => logs.push(l));
  const [a, b] = [origin("a"), origin("b")];
  const loop = async (id: string, o: string, status: LoopState, endedDaysAgo: number) => {
    await workspace.fetch(o, "ralph/x", "task");
    const worktree = await workspace.checkout(id, o, "ralph/x");
    mkdirSync(join(ws, "state", id), { recursive: true });
    writeFileSync(join(ws, "state", id, "opencode.log"), "log\n");
    store.insertLoop({ id, origin: o, branch: "ralph/x", taskDir: "task", worktree, maxIterations: 1, iterationTimeoutSeconds: 60, stallTimeoutSeconds: 60, maxCostUsd: null, maxTokens: null, model: null, sandbox: { mode: "on" } });
    store.updateLoop(id, { status, ...(status === "running" ? {} : { endedAt: new Date(Date.now() - endedDaysAgo * DAY).toISOString() }) });
    store.appendEvent(id, { type: "loop.status", time: new Date().toISOString(), status });
    return worktree;
  };
  const old = await loop("0000000a", a, "completed", 8);
  const recent = await loop("0000000b", a, "failed", 1);
  const oldB = await loop("0000000c", b, "stopped", 30);
  const running = await loop("0000000d", b, "running", 0);

  const first = await retention.prune();
  assert.deepEqual(first.loops.sort(), ["0000000a", "0000000c"]);
  assert.equal(first.mirrors, 0, "both origins still have a loop that needs their mirror");
  assert.ok(first.freedBytes > 0);
  assert.ok(!existsSync(old) && !existsSync(oldB) && existsSync(recent) && existsSync(running));
  assert.ok(!existsSync(join(ws, "state", "0000000a")) && existsSync(join(ws, "state", "0000000b")));
  assert.ok(store.getLoop("0000000a")!.prunedAt, "the history stays, marked as pruned");
  assert.equal(store.eventsAfter(0, "0000000a").length, 1);
  assert.deepEqual((await retention.prune()).loops, [], "a second prune finds nothing");

  // The running loop ends; forgetting it removes everything of it, and then b's mirror.
  store.updateLoop("0000000d", { status: "completed", endedAt: new Date().toISOString() });
  const forgot = await retention.forget(store.getLoop("0000000d")!);
  assert.equal(forgot.mirrors, 1, "no loop uses b's mirror any more");
  assert.equal(store.getLoop("0000000d"), undefined);
  assert.equal(store.eventsAfter(0, "0000000d").length, 0);
  assert.equal(readdirSync(join(ws, "repos")).length, 1, "a's mirror stays for the recent loop");
  assert.ok(!existsSync(running));

  // A prune "now" as if 8 days later takes the recent one and a's mirror too.
  const later = await retention.prune(Date.now() + 8 * DAY);
  assert.deepEqual(later.loops, ["0000000b"]);
  assert.equal(later.mirrors, 1);
  assert.deepEqual(readdirSync(join(ws, "repos")), []);
  assert.deepEqual(readdirSync(join(ws, "loops")), []);
  assert.ok(logs.some((l) => /loop 0000000a: removed its worktree and log/.test(l)));
  store.close();
});

test("a mirror whose loop is still being started is kept", async () => {
  const ws = join(root, "ws2");
  const store = new Store(join(root, "state2.db"));
  const workspace = new Workspace(ws);
  const o = origin("c");
  await workspace.fetch(o, "ralph/x", "task");
  assert.equal((await new Retention(store, workspace, join(ws, "state"), 7, () => [o], () => undefined).prune()).mirrors, 0);
  assert.equal((await new Retention(store, workspace, join(ws, "state"), 7, () => [], () => undefined).prune()).mirrors, 1);
  store.close();
});

test("reconcile stops hosting what no running loop owns and reports terminators the controller still lists", async () => {
  process.env.RALPH_HOME = join(root, "home");
  const config = DaemonConfigSchema.parse({ name: "box", identityFile: "/id.json", workspaceDir: join(root, "ws3") });
  const store = new Store(join(root, "state3.db"));
  store.insertLoop({ id: "0000000e", origin: "file:///x", branch: "b", taskDir: "t", worktree: "/w", maxIterations: 1, iterationTimeoutSeconds: 60, stallTimeoutSeconds: 60, maxCostUsd: null, maxTokens: null, model: null, sandbox: { mode: "on" } });
  store.updateLoop("0000000e", { status: "completed", endedAt: new Date().toISOString() });
  const hosted = new Set(["control", "0000000e"]);
  const unhosted: string[] = [];
  const host = {
    host: async () => undefined,
    unhost: async (key: string) => void (hosted.delete(key), unhosted.push(key)),
    hosted: () => [...hosted],
    terminators: async (service: string) => (service === "ralph-loops-box" ? ["0000000e", "0000000f"] : []),
  };
  const logs: string[] = [];
  const manager = new LoopManager(config, store, host, (l) => logs.push(l), new Notifier([], () => undefined));
  const r = await manager.reconcile();
  assert.deepEqual(r, { unhosted: ["0000000e"], stale: ["0000000e", "0000000f"] });
  assert.deepEqual(unhosted, ["0000000e"], "the control service is not a loop: it stays");
  assert.ok(logs.some((l) => /stopped hosting loop 0000000e: it is not running/.test(l)));
  assert.ok(logs.some((l) => /still lists terminator 0000000f of ralph-loops-box/.test(l)));
  store.close();
});
