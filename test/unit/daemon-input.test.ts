import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadDaemonConfig } from "../../src/daemon/config.js";
import { opencodeSettings, readEnvFile } from "../../src/daemon/opencode-settings.js";
import { ApiError } from "../../src/contract/errors.js";
import { resolveTaskDirIn, validateBranch, validateTaskDir } from "../../src/daemon/workspace.js";
import { checkOrigin } from "../../src/daemon/origins.js";

const dir = mkdtempSync(join(tmpdir(), "ralph-daemon-input-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const base = {
  name: "box",
  identityFile: "/id.json",
  workspaceDir: "/ws",
};
const configFile = (value: unknown) => {
  const f = join(dir, `config-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(f, typeof value === "string" ? value : JSON.stringify(value));
  return f;
};

test("a daemon config gets its defaults", () => {
  const c = loadDaemonConfig(configFile(base));
  assert.equal(c.maxConcurrentLoops, 4);
  assert.equal(c.loopTimeLimitSeconds, 24 * 3600);
});

test("a misspelt or missing daemon setting is refused by name, not ignored", () => {
  assert.throws(() => loadDaemonConfig(configFile({ ...base, maxConcurentLoops: 2 })), /Unrecognized key.*maxConcurentLoops/);
  assert.throws(() => loadDaemonConfig(configFile({ ...base, name: "Bad Name" })), /name: lower-case letters/);
  const { workspaceDir: _, ...noWorkspace } = base;
  assert.throws(() => loadDaemonConfig(configFile(noWorkspace)), /workspaceDir/);
  assert.throws(() => loadDaemonConfig(configFile("{oops")), /is not valid JSON/);
  assert.throws(() => loadDaemonConfig(join(dir, "missing.json")), /no daemon config at .*run 'ralph ziti up'/);
});

test("the env file gives KEY=VALUE pairs and names the line it cannot read", () => {
  const f = join(dir, "env");
  writeFileSync(f, "# keys\nANTHROPIC_API_KEY=sk-1\nQUOTED=\"two words\"\n\n");
  assert.deepEqual(readEnvFile(f), { ANTHROPIC_API_KEY: "sk-1", QUOTED: "two words" });
  writeFileSync(f, "A=1\nnot a pair\n");
  assert.throws(() => readEnvFile(f), /line 2 is not KEY=VALUE/);
  assert.deepEqual(readEnvFile(undefined), {});
});

test("the daemon-wide opencode config must be a JSON object", () => {
  const good = configFile({ model: "p/m" });
  assert.deepEqual(opencodeSettings({ ...loadDaemonConfig(configFile(base)), opencodeConfigFile: good }).config, { model: "p/m" });
  assert.throws(() => opencodeSettings({ ...loadDaemonConfig(configFile(base)), opencodeConfigFile: configFile([1]) }), /must hold a JSON object/);
});

test("origins that could run commands or read as options are refused", () => {
  const open = { forbiddenDirs: [] };
  for (const ok of ["file:///srv/repo.git", "https://example.com/r.git", "ssh://git@example.com/r.git", "git@example.com:team/r.git"]) checkOrigin(ok, open);
  for (const bad of ["ext::sh -c touch% /tmp/x", "--upload-pack=x", "fd::3", "/plain/path", "git@host:-oProxyCommand=x"]) {
    assert.throws(() => checkOrigin(bad, open), (e: unknown) => e instanceof ApiError && e.code === "invalid_request" && /not an allowed git URL/.test(e.message), bad);
  }
});

test("an allow-list admits only origins under its prefixes", () => {
  const policy = { allowed: ["https://github.com/acme/", "file:///srv/git/"], forbiddenDirs: [] };
  for (const ok of ["https://github.com/acme/app.git", "file:///srv/git/app.git"]) checkOrigin(ok, policy);
  for (const bad of ["https://github.com/acme-evil/app.git", "https://github.com/other/app.git", "file:///srv/gitx/app.git", "git@github.com:acme/app.git"]) {
    assert.throws(() => checkOrigin(bad, policy), /is not allowed on this daemon: it fetches only from https:\/\/github.com\/acme\/, file:\/\/\/srv\/git\/ \(allowedOrigins/, bad);
  }
});

test("a file:// origin inside the daemon's own workspace or home is refused, by any spelling of the path", () => {
  const home = join(dir, "home");
  const workspace = join(dir, "elsewhere", "ws");
  mkdirSync(join(home, "daemon"), { recursive: true });
  mkdirSync(join(workspace, "repos", "abc.git"), { recursive: true });
  symlinkSync(join(workspace, "repos"), join(dir, "innocent"));
  const policy = { forbiddenDirs: [workspace, home] };
  for (const bad of [`file://${workspace}/repos/abc.git`, `file://${home}`, `file://${home}/daemon/../daemon`, `file://${dir}/innocent/abc.git`, `file://${home}/not-yet-there.git`]) {
    assert.throws(() => checkOrigin(bad, policy), /lies inside this daemon's own files/, bad);
  }
  assert.throws(() => checkOrigin(`file://localhost${home}`, policy), /names a host/);
  assert.throws(() => checkOrigin(`file://${home.replace("home", "%68ome")}`, policy), /percent-escapes/);
  checkOrigin(`file://${join(dir, "elsewhere")}-origin.git`, policy);
});

test("a task dir must stay inside the repository", () => {
  assert.equal(validateTaskDir("tasks/a/../b"), "tasks/b");
  for (const bad of ["..", "../x", "a/../../x", "/etc"]) assert.throws(() => validateTaskDir(bad), /leaves the repository/, bad);
});

test("branch names are checked as plain names, never expanded by a repository around ralphd", async () => {
  // ralphd inside a repository where "@{-1}" and "@{upstream}" mean something.
  const repo = join(dir, "cwd-repo");
  const git = (...args: string[]) => execFileSync("git", ["-c", "user.name=T", "-c", "user.email=t@localhost", ...args], { cwd: repo, stdio: "pipe" }).toString().trim();
  mkdirSync(repo);
  git("init", "-q", "-b", "main");
  git("commit", "-q", "--allow-empty", "-m", "init");
  git("switch", "-q", "-c", "other");
  git("switch", "-q", "main");
  git("branch", "-q", "--set-upstream-to", "other");
  assert.equal(git("check-ref-format", "--branch", "@{-1}"), "other", "git itself expands it here");
  const cwd = process.cwd();
  process.chdir(repo);
  try {
    for (const ok of ["main", "ralph/feature-1", "a.b"]) await validateBranch(ok);
    for (const bad of ["@{-1}", "@{upstream}", "@{u}", "main@{1}", "@{push}", "-", "-f", "HEAD", "a..b", "x.lock", "", " main"]) {
      await assert.rejects(validateBranch(bad), (e: unknown) => e instanceof ApiError && e.code === "invalid_request" && /not a valid git branch name/.test(e.message), JSON.stringify(bad));
    }
  } finally {
    process.chdir(cwd);
  }
});

test("after checkout, a task dir or prd.json that leads out of the worktree is refused by name", () => {
  const worktree = join(dir, "worktree");
  const outside = join(dir, "outside");
  mkdirSync(join(worktree, "task"), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(outside, "prd.json"), "root:x:0:0:DAEMON-TEST-SECRET");
  symlinkSync(outside, join(worktree, "linked"));
  const refused = (taskDir: string, name: string) =>
    assert.throws(() => resolveTaskDirIn(worktree, taskDir), (e: unknown) => e instanceof ApiError && e.code === "invalid_request" && e.message.startsWith(`${name} leads outside the repository`) && !e.message.includes("SECRET"));
  refused("linked", "linked");
  assert.throws(() => resolveTaskDirIn(worktree, "task"), /no prd\.json at task on the branch/);
  symlinkSync(join(outside, "prd.json"), join(worktree, "task", "prd.json"));
  // The dir itself is fine; the loop refuses the file when it reads it.
  assert.equal(resolveTaskDirIn(worktree, "task"), realpathSync(join(worktree, "task")));
  assert.equal(readFileSync(join(outside, "prd.json"), "utf8"), "root:x:0:0:DAEMON-TEST-SECRET");
});
