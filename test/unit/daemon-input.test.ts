import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadDaemonConfig } from "../../src/daemon/config.js";
import { opencodeSettings, readEnvFile } from "../../src/daemon/opencode-settings.js";
import { RpcError } from "../../src/daemon/rpc.js";
import { validateOrigin, validateTaskDir } from "../../src/daemon/workspace.js";

const dir = mkdtempSync(join(tmpdir(), "ralph-daemon-input-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const base = {
  name: "box",
  identityFile: "/id.json",
  controller: { url: "https://127.0.0.1:1280", caFile: "/ca.pem", auth: { method: "password", username: "admin", passwordFile: "/pw" } },
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
  assert.equal(c.hostTunneler, "ziti");
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
  for (const ok of ["file:///srv/repo.git", "https://example.com/r.git", "ssh://git@example.com/r.git", "git@example.com:team/r.git"]) validateOrigin(ok);
  for (const bad of ["ext::sh -c touch% /tmp/x", "--upload-pack=x", "fd::3", "/plain/path", "git@host:-oProxyCommand=x"]) {
    assert.throws(() => validateOrigin(bad), (e: unknown) => e instanceof RpcError && e.code === "invalid_request" && /not an allowed git URL/.test(e.message), bad);
  }
});

test("a task dir must stay inside the repository", () => {
  assert.equal(validateTaskDir("tasks/a/../b"), "tasks/b");
  for (const bad of ["..", "../x", "a/../../x", "/etc"]) assert.throws(() => validateTaskDir(bad), /leaves the repository/, bad);
});
