#!/usr/bin/env node
// Runs the suite with Node's own test runner: `unit`, `integration`, `soak`,
// or `all` (unit and integration: the README's test command). Unit tests run
// in parallel. Integration files run two at a time: each brings up real
// processes (opencode in its sandbox, a ziti network), whose time is mostly
// waiting, on a 2-core machine. The soak (30 loops in a row) is a longer job
// that CI runs after the suite. Node applies the timeout to each file as a
// whole too: a hung file fails after 15 minutes instead of eating the budget.
import { readdirSync, existsSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";

const which = process.argv[2] ?? "all";
const SOAK = "soak.test.ts";
const files = (dir, keep = () => true) =>
  existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".test.ts") && keep(f)).sort().map((f) => join(dir, f)) : [];

const runs = [];
if (which === "all" || which === "unit") runs.push({ files: files("test/unit"), concurrency: 2 });
if (which === "all" || which === "integration") runs.push({ files: files("test/integration", (f) => f !== SOAK), concurrency: 2, timeout: 900_000 });
if (which === "soak") runs.push({ files: files("test/integration", (f) => f === SOAK), concurrency: 1, timeout: 900_000 });
if (runs.length === 0) {
  process.stderr.write(`usage: run-tests.mjs [all|unit|integration|soak]\n`);
  process.exit(2);
}

let failed = false;
for (const run of runs) {
  if (run.files.length === 0) continue;
  const r = spawnSync(
    process.execPath,
    ["--import", "tsx", "--test", `--test-concurrency=${run.concurrency}`, "--test-reporter=spec", ...(run.timeout ? [`--test-timeout=${run.timeout}`] : []), ...run.files],
    { stdio: "inherit" },
  );
  if (r.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
