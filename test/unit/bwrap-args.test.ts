// What a loop's sandbox is made of, as bubblewrap's command line: which
// namespaces, which mounts in which order, what stays read-only. The attack
// suite proves the result from inside; this pins the construction.
import { test } from "node:test";
import { existsSync } from "node:fs";
import assert from "node:assert/strict";
import { bwrapArgs, type BwrapSpec } from "../../src/sandbox/bwrap.js";
import { userNamespaceFilter } from "../../src/sandbox/seccomp.js";

const spec = (over: Partial<BwrapSpec> = {}): BwrapSpec => ({
  rw: ["/tmp/ralph-x/ws/loops/l1", "/tmp/ralph-x/ws/loops/l1/.git", "/tmp/ralph-x/ws/state/l1/box/home"],
  ro: ["/tmp/ralph-x/ws/loops/l1/.git/config", "/tmp/ralph-x/ws/loops/l1/.git/hooks", "/opt/tool/bin/node"],
  hide: [],
  tmp: "/tmp/ralph-x/ws/state/l1/box/tmp",
  env: { HOME: "/tmp/ralph-x/ws/state/l1/box/home", SECRET_LOOKING: "x" },
  cwd: "/tmp/ralph-x/ws/loops/l1",
  command: ["/usr/bin/node", "init.js"],
  ...over,
});

/** The position of a flag and its operands in the argument list. */
const at = (args: string[], ...seq: string[]) => args.findIndex((_, i) => seq.every((s, j) => args[i + j] === s));

test("an ordinary user's sandbox has its own user, PID, network, IPC and UTS namespaces, no nested user namespace, and dies with its parent", () => {
  const args = bwrapArgs(spec());
  for (const flag of ["--unshare-user", "--disable-userns", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session", "--clearenv"]) {
    assert.ok(args.includes(flag), flag);
  }
  assert.ok(!args.includes("--cap-add"), "no capability is added");
  assert.ok(!args.includes("--share-net"));
  assert.ok(at(args, "--", "/usr/bin/node", "init.js") === args.length - 3, "the command comes last");
});

test("root's sandbox has no user namespace (it would map to root) and only the capabilities to drop to its user", () => {
  const args = bwrapArgs(spec({ dropTo: { uid: 1800000001, gid: 1800000001 } }));
  assert.ok(!args.includes("--unshare-user"));
  assert.deepEqual(args.filter((_, i) => args[i - 1] === "--cap-add"), ["CAP_SETUID", "CAP_SETGID"]);
});

test("mounts go outer before inner; git's config and hooks lie read-only over the read-write worktree; the way to them under /tmp and the root are read-only", () => {
  const args = bwrapArgs(spec());
  const worktree = at(args, "--bind", "/tmp/ralph-x/ws/loops/l1", "/tmp/ralph-x/ws/loops/l1");
  const gitDir = at(args, "--bind", "/tmp/ralph-x/ws/loops/l1/.git", "/tmp/ralph-x/ws/loops/l1/.git");
  const config = at(args, "--ro-bind", "/tmp/ralph-x/ws/loops/l1/.git/config", "/tmp/ralph-x/ws/loops/l1/.git/config");
  assert.ok(worktree >= 0 && worktree < gitDir && gitDir < config, "worktree, then .git as a mount point of its own, then its config read-only");
  assert.ok(at(args, "--bind", "/tmp/ralph-x/ws/state/l1/box/tmp", "/tmp") < worktree, "the private /tmp first, the worktree inside it after");
  const way = at(args, "--perms", "0755", "--tmpfs", "/tmp/ralph-x");
  assert.ok(way >= 0 && way < worktree, "the way to the worktree is a tmpfs of its own, not the private /tmp");
  assert.ok(at(args, "--remount-ro", "/tmp/ralph-x") > config && at(args, "--remount-ro", "/") > config, "made read-only once everything is mounted");
  assert.ok(at(args, "--perms", "0755", "--dir", "/tmp/ralph-x/ws") > way, "the directories on the way pass the dropped user through");
  for (const system of ["/usr", "/etc"]) assert.ok(at(args, "--ro-bind", system, system) >= 0, `${system} read-only`);
  assert.ok(!args.some((a) => a === "/root" || a === "/home" || a.startsWith("/var")), "nothing of any user's home, nor /var");
  if (existsSync("/opt")) assert.ok(at(args, "--ro-bind", "/opt/tool/bin/node", "/opt/tool/bin/node") > at(args, "--ro-bind", "/opt", "/opt"), "an extra binary goes over the system");
});

test("hidden system files become empty, hidden directories empty tmpfs", () => {
  const args = bwrapArgs(spec({ hide: ["/etc/passwd", "/etc/ssl"] }));
  assert.ok(at(args, "--ro-bind", "/dev/null", "/etc/passwd") > at(args, "--ro-bind", "/etc", "/etc"));
  assert.ok(at(args, "--tmpfs", "/etc/ssl") > at(args, "--ro-bind", "/etc", "/etc"));
});

test("the seccomp filter is whole classic BPF for this machine: 8-byte instructions, jumps that stay inside, a return at the end", () => {
  const filter = userNamespaceFilter();
  if (!filter) return assert.fail(`no filter for ${process.arch}`);
  assert.equal(filter.length % 8, 0);
  const n = filter.length / 8;
  const RET = 0x06;
  for (let i = 0; i < n; i++) {
    const code = filter.readUInt16LE(i * 8);
    const [jt, jf] = [filter.readUInt8(i * 8 + 2), filter.readUInt8(i * 8 + 3)];
    if ((code & 0x07) === 0x05) assert.ok(i + 1 + Math.max(jt, jf) < n, `jump at ${i} stays inside`);
  }
  assert.equal(filter.readUInt16LE((n - 1) * 8), RET, "the last instruction returns");
  assert.equal(userNamespaceFilter("mips"), undefined, "an unknown architecture gets none rather than a wrong one");
});
