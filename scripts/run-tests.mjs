#!/usr/bin/env node
// Runs the suite with Node's own test runner. Unit tests run in parallel;
// integration tests run one file at a time because each brings up real
// processes (opencode, a ziti network) on a 2-core machine. Node applies the
// timeout to each file as a whole too: a hung file fails after 15 minutes
// instead of eating the CI budget (the longest, the soak test, takes about 7).
import { readdirSync, existsSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";

const which = process.argv[2] ?? "all";
const files = (dir) =>
  existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".test.ts")).sort().map((f) => join(dir, f)) : [];

const runs = [];
if (which === "all" || which === "unit") runs.push({ files: files("test/unit"), concurrency: 2 });
if (which === "all" || which === "integration") runs.push({ files: files("test/integration"), concurrency: 1, timeout: 900_000 });

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
