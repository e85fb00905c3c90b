import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BoundedLog } from "../../src/util/bounded-log.js";

test("a bounded log keeps the newest lines in two files of about its limit", () => {
  const dir = mkdtempSync(join(tmpdir(), "ralph-log-"));
  try {
    const file = join(dir, "host.log");
    const log = new BoundedLog(file, 1000);
    for (let i = 0; i < 500; i++) log.write(`line ${i}\n`);
    log.end();
    assert.ok(statSync(file).size <= 1000 + 9 && statSync(`${file}.1`).size <= 1000 + 9, "neither file grows much beyond the limit");
    assert.match(readFileSync(file, "utf8"), /line 499\n$/, "the newest line is kept");
    assert.equal((statSync(file).mode & 0o777).toString(8), "600");
    // Reopened, it counts what the file already holds.
    const again = new BoundedLog(file, 1000);
    again.write("x".repeat(1000));
    again.write("after\n");
    again.end();
    assert.equal(readFileSync(file, "utf8"), "after\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
