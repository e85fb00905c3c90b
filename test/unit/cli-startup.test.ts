// What `ralph --help` and `ralph remote ls` load: commander and the command
// definitions, none of the heavy modules a command's action needs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const cli = join(process.cwd(), "dist", "cli", "ralph.js");
const hook = join(process.cwd(), "test", "support", "trace-imports.mjs");
const HEAVY = ["zod", "execa", "undici", "hono", "@hono", "better-sqlite3", "@opencode-ai", "eventsource-parser", "p-retry"];

function loadedBy(args: string[]): string[] {
  const home = mkdtempSync(join(tmpdir(), "ralph-startup-"));
  try {
    const r = spawnSync(process.execPath, ["--import", hook, cli, ...args], { env: { ...process.env, RALPH_HOME: home }, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    return r.stderr.split("\n").filter((l) => l.startsWith("LOADED ")).map((l) => l.slice("LOADED ".length));
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

const packagesIn = (urls: string[]) => [...new Set(urls.map((u) => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u)?.[1]).filter((p): p is string => Boolean(p)))];

for (const args of [["--help"], ["remote", "ls"], ["ls", "--help"]]) {
  test(`ralph ${args.join(" ")} loads commander and no heavy module`, () => {
    const loaded = loadedBy(args);
    assert.ok(loaded.some((u) => u.endsWith("/dist/cli/ralph.js")), "the hook saw the program");
    assert.deepEqual(packagesIn(loaded), ["commander"]);
    assert.deepEqual(loaded.filter((u) => HEAVY.some((h) => u.includes(`/node_modules/${h}`))), []);
    assert.deepEqual(loaded.filter((u) => /\/dist\/(daemon|ziti\/(network|binary|mgmt)|opencode|loop\/engine)/.test(u)), [], "no daemon, network or loop code");
  });
}
