import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ContainmentError, MAX_FILE_BYTES, appendContained, containedDir, locateTaskDir, readContained } from "../../src/loop/contained.js";

const SECRET = "root:x:0:0:CONTAINED-TEST-SECRET-7f3a";
const base = realpathSync(mkdtempSync(join(tmpdir(), "ralph-contained-")));
after(() => rmSync(base, { recursive: true, force: true }));

let n = 0;
/** A repository dir and, beside it, an outside dir holding a secret file. */
function world() {
  const root = join(base, `w${++n}`);
  const repo = join(root, "repo");
  const outside = join(root, "outside");
  mkdirSync(join(repo, "task"), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(outside, "secret.txt"), SECRET);
  return { repo, outside, secret: join(outside, "secret.txt") };
}

/** Refused by name, the secret nowhere in the message. */
const refused = (file: string) => (e: unknown) => e instanceof ContainmentError && e.message.startsWith(file) && !e.message.includes("CONTAINED-TEST-SECRET");

test("a symlink to a file outside is refused for reading and appending, and the file is untouched", () => {
  const w = world();
  symlinkSync(w.secret, join(w.repo, "task", "prd.json"));
  const before = statSync(w.secret).mtimeMs;
  assert.throws(() => readContained(w.repo, "task/prd.json"), refused("task/prd.json"));
  assert.throws(() => readContained(w.repo, join(w.repo, "task", "prd.json")), refused("task/prd.json"), "an absolute path inside names the same file");
  assert.throws(() => appendContained(w.repo, "task/prd.json", "appended\n"), refused("task/prd.json"));
  assert.equal(readFileSync(w.secret, "utf8"), SECRET);
  assert.equal(statSync(w.secret).mtimeMs, before);
});

test("a symlink to a directory outside is refused, for files through it and as a directory", () => {
  const w = world();
  symlinkSync(w.outside, join(w.repo, "linked"));
  assert.throws(() => readContained(w.repo, "linked/secret.txt"), refused("linked/secret.txt"));
  assert.throws(() => appendContained(w.repo, "linked/new.txt", "x"), refused("linked/new.txt"));
  assert.equal(existsSync(join(w.outside, "new.txt")), false, "nothing was created outside");
  assert.throws(() => containedDir(w.repo, "linked"), refused("linked"));
});

test("a dangling symlink is refused: appending would create its target", () => {
  const w = world();
  symlinkSync(join(w.outside, "created.txt"), join(w.repo, "task", "progress.txt"));
  assert.throws(() => appendContained(w.repo, "task/progress.txt", "x"), refused("task/progress.txt"));
  assert.throws(() => readContained(w.repo, "task/progress.txt"), refused("task/progress.txt"));
  assert.equal(existsSync(join(w.outside, "created.txt")), false);
});

test("paths whose letters leave the repository are refused before anything is opened", () => {
  const w = world();
  for (const bad of ["../outside/secret.txt", "task/../../outside/secret.txt", w.secret, "/etc/passwd"]) {
    assert.throws(() => readContained(w.repo, bad), (e: unknown) => e instanceof ContainmentError && /is outside the repository/.test(e.message), bad);
    assert.throws(() => appendContained(w.repo, bad, "x"), ContainmentError, bad);
  }
  assert.throws(() => containedDir(w.repo, ".."), ContainmentError);
  assert.equal(readFileSync(w.secret, "utf8"), SECRET);
});

test("a symlink that stays inside the repository is followed", () => {
  const w = world();
  mkdirSync(join(w.repo, "docs"));
  writeFileSync(join(w.repo, "docs", "agents.md"), "Run the tests.\n");
  symlinkSync("docs/agents.md", join(w.repo, "AGENTS.md"));
  assert.equal(readContained(w.repo, "AGENTS.md")?.toString(), "Run the tests.\n");
  symlinkSync("../docs", join(w.repo, "task", "shared"));
  assert.equal(containedDir(w.repo, "task/shared"), join(w.repo, "docs"));
  appendContained(w.repo, "task/shared/log.txt", "one\n");
  assert.equal(readFileSync(join(w.repo, "docs", "log.txt"), "utf8"), "one\n");
});

test("a missing file reads as undefined and is created by an append", () => {
  const w = world();
  assert.equal(readContained(w.repo, "task/prompt.md"), undefined);
  assert.equal(readContained(join(w.repo, "nowhere"), "AGENTS.md"), undefined);
  appendContained(w.repo, "task/progress.txt", "a\n");
  appendContained(w.repo, "task/progress.txt", "b\n");
  assert.equal(readFileSync(join(w.repo, "task", "progress.txt"), "utf8"), "a\nb\n");
});

test("a file over the limit is refused by its size, and a FIFO as not a regular file", () => {
  const w = world();
  writeFileSync(join(w.repo, "AGENTS.md"), Buffer.alloc(MAX_FILE_BYTES + 1, 0x61));
  assert.throws(() => readContained(w.repo, "AGENTS.md"), (e: unknown) => e instanceof ContainmentError && /^AGENTS\.md is 1\.0 MiB, over the limit of 1\.0 MiB: refused$/.test(e.message));
  writeFileSync(join(w.repo, "small.txt"), "12345");
  assert.throws(() => readContained(w.repo, "small.txt", 4), / small\.txt is 5 bytes, over the limit of 4 bytes: refused$/);
  assert.equal(readContained(w.repo, "small.txt", 5)?.toString(), "12345");
  execFileSync("mkfifo", [join(w.repo, "task", "prompt.md")]);
  assert.throws(() => readContained(w.repo, "task/prompt.md"), (e: unknown) => e instanceof ContainmentError && /not a regular file/.test(e.message));
});

test("a symlinked task dir cannot choose its repository: it is found from the dir's parent and the link refused", async () => {
  const w = world();
  const git = (cwd: string, ...args: string[]) => execFileSync("git", args, { cwd, stdio: "ignore" });
  git(w.repo, "init", "-q");
  // Even when the outside dir is a repository of its own.
  git(w.outside, "init", "-q");
  symlinkSync(w.outside, join(w.repo, "tasks"));
  await assert.rejects(locateTaskDir(join(w.repo, "tasks")), refused("tasks"));
  assert.deepEqual(await locateTaskDir(join(w.repo, "task")), { root: w.repo, rel: "task" });
  assert.deepEqual(await locateTaskDir(w.repo), { root: w.repo, rel: "." });
  await assert.rejects(locateTaskDir(w.outside, w.repo), /is outside the repository/);
});
