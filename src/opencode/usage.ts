import type { OpencodeClient } from "@opencode-ai/sdk/v2";
import { addUsage, emptyUsage, type Usage } from "../loop/usage.js";

/** The fields of an opencode assistant message that carry what it used. */
export interface AssistantUsage {
  providerID: string;
  modelID: string;
  cost: number;
  tokens: { input: number; output: number; reasoning: number; cache: { read: number; write: number } };
}

/**
 * Sums assistant messages. opencode reports cost 0 for a model without a
 * price, so the price list decides: an unpriced model makes the cost unknown.
 */
export function usageOf(messages: AssistantUsage[], priced: ReadonlySet<string>): Usage {
  return messages.reduce<Usage>(
    (sum, m) =>
      addUsage(sum, {
        tokens: { input: m.tokens.input, output: m.tokens.output, reasoning: m.tokens.reasoning, cacheRead: m.tokens.cache.read, cacheWrite: m.tokens.cache.write },
        costUsd: priced.has(`${m.providerID}/${m.modelID}`) ? m.cost : null,
      }),
    emptyUsage(),
  );
}

/** "provider/model" ids that have a price in this server's config (it cannot change while the server runs). */
export async function pricedModels(client: OpencodeClient): Promise<Set<string>> {
  const res = await client.config.providers();
  if (!res.data) throw new Error(`opencode did not list its providers: ${JSON.stringify(res.error)}`);
  const ids = new Set<string>();
  for (const p of res.data.providers) {
    for (const m of Object.values(p.models)) {
      const c = m.cost;
      if (c && (c.input > 0 || c.output > 0 || c.cache?.read > 0 || c.cache?.write > 0)) ids.add(`${p.id}/${m.id}`);
    }
  }
  return ids;
}
