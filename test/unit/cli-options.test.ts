// The CLI's checks of loop settings: decimal numbers only, and the contract's
// bounds, so that what the client lets through the daemon accepts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { boundedInt, positiveAmount } from "../../src/cli/options.js";
import { BOUNDS } from "../../src/contract/bounds.js";
import { StartLoopRequestSchema } from "../../src/contract/schemas.js";

test("amounts are decimal dollars: hexadecimal, exponents and words are refused", () => {
  const cost = positiveAmount("--max-cost");
  assert.equal(cost("2.50"), 2.5);
  assert.equal(cost("$3"), 3);
  for (const bad of ["0x10", "1e3", "0", "-1", "", " ", "12abc", "Infinity", "2.", "1000001"]) {
    assert.throws(() => cost(bad), /--max-cost must be an amount in US dollars above 0 and at most 1000000/, bad);
  }
});

test("whole numbers are decimal digits within the contract's bounds, the same the daemon checks", () => {
  const stall = boundedInt("--stall-timeout", "stallTimeoutSeconds");
  assert.equal(stall("5"), 5);
  for (const bad of ["4", "0x10", "1e3", "86401", "5.5", "-5"]) assert.throws(() => stall(bad), /--stall-timeout must be a whole number from 5 to 86400/, bad);
  // Each bound is one the daemon's schema also holds: the edges pass there, one beyond does not.
  const base = { origin: "file:///o", branch: "b", taskDir: "t" };
  for (const [key, b] of Object.entries(BOUNDS)) {
    if (key === "maxCostUsd") continue;
    assert.ok(StartLoopRequestSchema.safeParse({ ...base, [key]: b.min }).success, `${key} ${b.min}`);
    assert.ok(StartLoopRequestSchema.safeParse({ ...base, [key]: b.max }).success, `${key} ${b.max}`);
    assert.ok(!StartLoopRequestSchema.safeParse({ ...base, [key]: b.min - 1 }).success, `${key} ${b.min - 1}`);
    assert.ok(!StartLoopRequestSchema.safeParse({ ...base, [key]: b.max + 1 }).success, `${key} ${b.max + 1}`);
  }
});
