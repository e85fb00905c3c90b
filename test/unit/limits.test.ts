// How a loop's limits become cgroup files, on copies of the cgroup trees in a
// temporary directory. This machine's kernel binds memory, pids and cpu to
// cgroup v1, so v1 is also proven for real by the integration suite (a fork
// bomb and a memory hog); cgroup v2 is proven here only as far as the files
// it writes and reads.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { limitGroup, limitsKind, niceOf, type CgroupHost } from "../../src/sandbox/limits.js";

const dir = mkdtempSync(join(tmpdir(), "ralph-cgroups-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const limits = { memoryMb: 1536, pids: 256, cpuWeight: 50 };
const read = (...p: string[]) => readFileSync(join(...p), "utf8");

function v2Tree(name: string, own: string, controllers = "cpuset cpu io memory pids"): CgroupHost & { own: string } {
  const root = join(dir, name);
  mkdirSync(join(root, own), { recursive: true });
  for (const d of [root, join(root, own)]) {
    writeFileSync(join(d, "cgroup.controllers"), controllers);
    writeFileSync(join(d, "cgroup.subtree_control"), "");
    writeFileSync(join(d, "cgroup.procs"), "");
  }
  return { root, self: () => `0::${own}\n`, pid: 4242, uid: 1000, own: join(root, own) };
}

test("cgroup v1: one group per controller, the limits written in each controller's terms, the hits read back", () => {
  const root = join(dir, "v1");
  for (const c of ["memory", "pids", "cpu"]) {
    mkdirSync(join(root, c), { recursive: true });
    writeFileSync(join(root, c, "cgroup.procs"), "");
  }
  const host = { root, self: () => "", pid: 1, uid: 0 };
  assert.equal(limitsKind(host).kind, "cgroup-v1");
  const g = limitGroup("box-l1", limits, "cgroup-v1", host);
  assert.equal(read(root, "memory", "ralph-remote", "box-l1", "memory.limit_in_bytes"), String(1536 * 1024 * 1024));
  assert.equal(read(root, "pids", "ralph-remote", "box-l1", "pids.max"), "256");
  assert.equal(read(root, "cpu", "ralph-remote", "box-l1", "cpu.shares"), "512", "half an equal share");
  assert.deepEqual(g.procsFiles, ["memory", "pids", "cpu"].map((c) => join(root, c, "ralph-remote", "box-l1", "cgroup.procs")));
  writeFileSync(join(root, "memory", "ralph-remote", "box-l1", "memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
  writeFileSync(join(root, "pids", "ralph-remote", "box-l1", "pids.events"), "max 17\n");
  assert.deepEqual(g.hits(), { memory: 2, pids: 17 });
  rmSync(join(root, "memory", "ralph-remote", "box-l1"), { recursive: true });
});

test("cgroup v2 delegated (systemd's Delegate=yes): the daemon moves to a leaf of its own, hands the controllers down, and each loop gets memory.max, pids.max and cpu.weight", () => {
  const host = v2Tree("v2-delegated", "/system.slice/ralphd.service");
  const kind = limitsKind(host);
  assert.deepEqual(kind, { kind: "cgroup-v2", detail: `cgroup v2 (${host.own}, delegated)` });
  const g = limitGroup("box-l2", limits, "cgroup-v2", host);
  assert.equal(read(host.own, "ralphd", "cgroup.procs"), "4242", "the daemon left the group that hands controllers down");
  assert.equal(read(host.own, "cgroup.subtree_control"), "+memory +pids +cpu");
  const loop = join(host.own, "loop-box-l2");
  assert.equal(read(loop, "memory.max"), String(1536 * 1024 * 1024));
  assert.equal(read(loop, "pids.max"), "256");
  assert.equal(read(loop, "cpu.weight"), "50");
  assert.deepEqual(g.procsFiles, [join(loop, "cgroup.procs")]);
  writeFileSync(join(loop, "memory.events"), "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n");
  writeFileSync(join(loop, "pids.events"), "max 3\n");
  assert.deepEqual(g.hits(), { memory: 1, pids: 3 });
});

test("cgroup v2 as root: a group of Ralph's own under the root, controllers enabled on the way", () => {
  const host = { ...v2Tree("v2-root", "/init.scope"), uid: 0 };
  assert.equal(limitsKind(host).kind, "cgroup-v2");
  limitGroup("box-l3", limits, "cgroup-v2", host);
  assert.equal(read(host.root, "cgroup.subtree_control"), "+memory +pids +cpu");
  assert.equal(read(host.root, "ralph-remote", "cgroup.subtree_control"), "+memory +pids +cpu");
  assert.equal(read(host.root, "ralph-remote", "loop-box-l3", "pids.max"), "256");
  assert.ok(!existsSync(join(host.root, "ralph-remote", "ralphd")), "root's own process stays where it is");
});

test("without a usable cgroup the limits are rlimits, and the reason says what would give cgroups", () => {
  const notDelegated = v2Tree("v2-user", "/user.slice/user-1000.slice/session-1.scope");
  for (const f of ["cgroup.procs", "cgroup.subtree_control"]) rmSync(join(notDelegated.own, f));
  const a = limitsKind(notDelegated);
  assert.equal(a.kind, "rlimit");
  assert.match(a.detail, /cgroup v2 is not delegated to this user \(run ralphd under systemd with Delegate=yes, or as root\)/);
  const noPids = v2Tree("v2-nopids", "/x", "cpu memory");
  assert.match(limitsKind(noPids).detail, /^rlimits: .*cgroup v2 lacks the pids controller/);
  assert.match(limitsKind({ root: join(dir, "nothing"), self: () => "", pid: 1, uid: 0 }).detail, /no cgroup memory, pids and cpu controllers/);
  assert.deepEqual([niceOf(100), niceOf(1000), niceOf(50), niceOf(1)], [0, 0, 10, 19]);
});
