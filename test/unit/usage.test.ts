import { test } from "node:test";
import assert from "node:assert/strict";
import { addUsage, budgetHit, describeBudgetHit, emptyUsage, formatUsage, totalTokens, type Usage } from "../../src/loop/usage.js";
import { usageOf } from "../../src/opencode/usage.js";

const u = (input: number, output: number, costUsd: number | null, cacheRead = 0): Usage => ({
  tokens: { input, output, reasoning: 0, cacheRead, cacheWrite: 0 },
  costUsd,
});

test("usage adds up per field, and a sum with an unknown part has an unknown cost", () => {
  assert.deepEqual(addUsage(u(10, 5, 0.25, 3), u(1, 2, 0.5)), u(11, 7, 0.75, 3));
  assert.equal(addUsage(u(10, 5, 0.25), u(1, 2, null)).costUsd, null);
  assert.equal(addUsage(u(1, 2, null), emptyUsage()).costUsd, null);
  assert.equal(totalTokens(u(10, 5, 0, 3)), 18);
});

test("opencode's assistant messages are summed; an unpriced model's cost is unknown, never 0", () => {
  const msg = (providerID: string, cost: number) => ({ providerID, modelID: "m", cost, tokens: { input: 100, output: 20, reasoning: 5, cache: { read: 7, write: 3 } } });
  const priced = new Set(["paid/m"]);
  assert.deepEqual(usageOf([msg("paid", 0.01), msg("paid", 0.02)], priced), { tokens: { input: 200, output: 40, reasoning: 10, cacheRead: 14, cacheWrite: 6 }, costUsd: 0.01 + 0.02 });
  assert.equal(usageOf([msg("paid", 0.01), msg("free", 0)], priced).costUsd, null);
  assert.deepEqual(usageOf([], priced), emptyUsage());
});

test("a budget is reached at its limit, by tokens or by cost; an unknown cost cannot keep a cost limit", () => {
  assert.equal(budgetHit(u(50, 49, 1), { maxTokens: 100 }), undefined);
  assert.deepEqual(budgetHit(u(50, 50, 1), { maxTokens: 100 }), { limit: "tokens", max: 100, used: 100 });
  assert.equal(budgetHit(u(1, 1, 0.99), { maxCostUsd: 1 }), undefined);
  assert.deepEqual(budgetHit(u(1, 1, 1.5), { maxCostUsd: 1 }), { limit: "cost", max: 1, used: 1.5 });
  assert.deepEqual(budgetHit(u(1, 1, null), { maxCostUsd: 1 }), { limit: "cost", max: 1, used: null });
  assert.equal(budgetHit(emptyUsage(), { maxCostUsd: 1 }), undefined, "nothing spent yet");
  assert.equal(budgetHit(u(1e9, 1e9, 1e9), {}), undefined, "no budget, no limit");
  assert.match(describeBudgetHit({ limit: "cost", max: 1, used: null }), /cannot be kept: the model has no price/);
  assert.equal(describeBudgetHit({ limit: "cost", max: 2, used: 2.5 }), "cost budget reached: $2.50 of $2.00");
  assert.equal(describeBudgetHit({ limit: "tokens", max: 100, used: 120 }), "token budget reached: 120 of 100 tokens");
});

test("usage reads short on a terminal", () => {
  assert.equal(formatUsage(u(640, 0, null)), "640 tokens, cost unknown");
  assert.equal(formatUsage(u(12_000, 345, 0.04213)), "12.3k tokens, $0.0421");
  assert.equal(formatUsage(u(0, 0, 0)), "0 tokens, $0.0000");
});
