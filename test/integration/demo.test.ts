// The README's first command end to end: `ralph demo` in a fresh RALPH_HOME
// brings up the OpenZiti network, starts ralphd, and runs the example loop
// remotely through the overlay with the scripted model, then cleans up.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { findProcesses } from "../../src/process/proc-scan.js";
import { pidAlive } from "../../src/process/supervisor.js";
import { cli, ralph } from "../support/daemon-harness.js";
import { agentStatus } from "../support/control.js";

test("ralph demo runs the example loop on a local ralphd through the overlay and leaves nothing running", async () => {
  const home = mkdtempSync(join(tmpdir(), "ralph-demo-home-"));
  let origin: string | undefined;
  try {
    const child = spawn(process.execPath, [cli, "demo"], { env: { ...process.env, RALPH_HOME: home, RALPH_MODEL: "" }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
    assert.equal(code, 0, `${stdout}\n${stderr}`);

    assert.match(stderr, /scripted offline DEMO model/, "says plainly that the model is a demo");
    const daemonPid = Number(/ralphd started \(pid (\d+)\)/.exec(stderr)?.[1]);
    assert.ok(daemonPid > 0);
    assert.match(stderr, /remote "local": the control API through the overlay, by the client agent's warm dialer/);
    for (const story of ["#1 US-1 Say hello", "#2 US-2 Say goodbye", "#3 US-3 Document both"]) assert.ok(stdout.includes(story), story);
    // Six scripted answers at the demo's made-up price.
    assert.match(stdout, /completed: 3\/3 stories pass after 3 iteration\(s\) in [\d.]+s, 7200 tokens, \$0\.0311/);
    assert.ok((stdout.match(/pushed ralph\/greeter at [0-9a-f]{7} to the origin/g) ?? []).length >= 3, "each committed iteration is pushed, and said so");

    origin = /pushed to file:\/\/(\S+) on ralph\/greeter:/.exec(stdout)?.[1];
    assert.ok(origin && !origin.startsWith(home), "the example project lives outside RALPH_HOME, where the daemon may fetch it");
    assert.ok(origin, stdout);
    const subjects = execFileSync("git", ["--git-dir", origin, "log", "--format=%s", "main..ralph/greeter"]).toString().trim().split("\n");
    assert.deepEqual(subjects, ["feat: [US-3] - Document both", "feat: [US-2] - Say goodbye", "feat: [US-1] - Say hello"]);
    const prd = JSON.parse(execFileSync("git", ["--git-dir", origin, "show", "ralph/greeter:ralph/prd.json"]).toString()) as { userStories: { passes: boolean }[] };
    assert.ok(prd.userStories.every((s) => s.passes), "the pushed PRD has every story passing");

    assert.equal(pidAlive(daemonPid), false, "the demo stops the ralphd it started");
    const status = await ralph(home, ["ziti", "status", "--json"]);
    assert.equal(JSON.parse(status.stdout).running, false, "and the network it started");
    assert.deepEqual(findProcesses((argv) => argv.some((a) => a.includes(home))), [], "no process of this home is left, the client agent's dialer included");
    assert.deepEqual(await agentStatus(home), { running: false }, "the client agent went with the network");
  } finally {
    rmSync(home, { recursive: true, force: true });
    if (origin) rmSync(dirname(origin), { recursive: true, force: true });
  }
});
