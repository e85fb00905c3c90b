import { z } from "zod";

/** Tokens as opencode counts them on its assistant messages. */
export const TokensSchema = z.object({
  input: z.number(),
  output: z.number(),
  reasoning: z.number(),
  cacheRead: z.number(),
  cacheWrite: z.number(),
});
export type Tokens = z.infer<typeof TokensSchema>;

/** What an iteration or a loop used. `costUsd` is null when the model has no price: unknown, never 0. */
export const UsageSchema = z.object({ tokens: TokensSchema, costUsd: z.number().nullable() });
export type Usage = z.infer<typeof UsageSchema>;

/** Limits a loop stops at; either may be absent. */
export const BudgetSchema = z.object({ maxCostUsd: z.number().positive().optional(), maxTokens: z.number().int().positive().optional() });
export type Budget = z.infer<typeof BudgetSchema>;
