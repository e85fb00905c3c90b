/** Provider and model ids under which opencode sees the scripted model. */
export const SCRIPTED_PROVIDER = "ralph-demo";
export const SCRIPTED_MODEL = "scripted";
export const SCRIPTED_MODEL_ID = `${SCRIPTED_PROVIDER}/${SCRIPTED_MODEL}`;

/** A model's price in opencode's config: USD per million tokens. */
export interface ModelPrice {
  input: number;
  output: number;
  cache_read?: number;
  cache_write?: number;
}

/** What the demo pretends the scripted model costs, so that its summary shows a cost (a made-up price, said so). */
export const DEMO_PRICE: ModelPrice = { input: 3, output: 15, cache_read: 0.3, cache_write: 3.75 };

/** opencode config that points opencode at a scripted model server; without a price its cost is unknown. */
export function scriptedModelConfig(baseUrl: string, price?: ModelPrice): Record<string, unknown> {
  return {
    $schema: "https://opencode.ai/config.json",
    provider: {
      [SCRIPTED_PROVIDER]: {
        npm: "@ai-sdk/openai-compatible",
        name: "Ralph demo model (scripted, offline)",
        options: { baseURL: baseUrl, apiKey: "not-needed" },
        models: { [SCRIPTED_MODEL]: { name: "Scripted demo model", tool_call: true, ...(price ? { cost: price } : {}) } },
      },
    },
    model: SCRIPTED_MODEL_ID,
    small_model: SCRIPTED_MODEL_ID,
  };
}
