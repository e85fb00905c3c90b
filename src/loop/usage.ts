import type { Budget, Tokens, Usage } from "./usage-schema.js";

// The schemas are in usage-schema.ts: these helpers are used by every command, and zod is slow to load.
export type { Budget, Tokens, Usage };

export const emptyUsage = (): Usage => ({ tokens: { input: 0, output: 0, reasoning: 0, cacheRead: 0, cacheWrite: 0 }, costUsd: 0 });

/** Every token opencode processed for the loop, cache reads and writes included: what --max-tokens limits. */
export const totalTokens = (u: Usage): number => u.tokens.input + u.tokens.output + u.tokens.reasoning + u.tokens.cacheRead + u.tokens.cacheWrite;

/** A sum with an unknown part has an unknown cost. */
export function addUsage(a: Usage, b: Usage): Usage {
  const t = (k: keyof Tokens) => a.tokens[k] + b.tokens[k];
  return {
    tokens: { input: t("input"), output: t("output"), reasoning: t("reasoning"), cacheRead: t("cacheRead"), cacheWrite: t("cacheWrite") },
    costUsd: a.costUsd === null || b.costUsd === null ? null : a.costUsd + b.costUsd,
  };
}

export interface BudgetHit {
  limit: "cost" | "tokens";
  max: number;
  /** null: the cost is unknown (the model has no price), so a cost limit cannot be kept. */
  used: number | null;
}

/**
 * The first limit `u` has reached, if any. A cost limit on a model without a
 * price counts as reached as soon as tokens are spent: it cannot be kept.
 */
export function budgetHit(u: Usage, budget: Budget): BudgetHit | undefined {
  if (budget.maxTokens !== undefined && totalTokens(u) >= budget.maxTokens) return { limit: "tokens", max: budget.maxTokens, used: totalTokens(u) };
  if (budget.maxCostUsd !== undefined && (u.costUsd === null ? totalTokens(u) > 0 : u.costUsd >= budget.maxCostUsd)) {
    return { limit: "cost", max: budget.maxCostUsd, used: u.costUsd };
  }
  return undefined;
}

export const formatCost = (usd: number | null): string => (usd === null ? "cost unknown" : `$${usd < 1 ? usd.toFixed(4) : usd.toFixed(2)}`);

const compact = (n: number): string => (n >= 10_000_000 ? `${(n / 1e6).toFixed(1)}M` : n >= 10_000 ? `${(n / 1e3).toFixed(1)}k` : String(n));

/** e.g. "12.3k tokens, $0.0421" or "640 tokens, cost unknown". */
export const formatUsage = (u: Usage): string => `${compact(totalTokens(u))} tokens, ${formatCost(u.costUsd)}`;

export function describeBudgetHit(hit: BudgetHit): string {
  if (hit.limit === "tokens") return `token budget reached: ${hit.used} of ${hit.max} tokens`;
  if (hit.used === null) {
    return `the cost budget of ${formatCost(hit.max)} cannot be kept: the model has no price in opencode's config (give its model entry a "cost" in USD per million tokens, or use a token budget)`;
  }
  return `cost budget reached: ${formatCost(hit.used)} of ${formatCost(hit.max)}`;
}
