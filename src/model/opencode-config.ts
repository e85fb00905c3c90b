/** Provider and model ids under which opencode sees the scripted model. */
export const SCRIPTED_PROVIDER = "ralph-demo";
export const SCRIPTED_MODEL = "scripted";
export const SCRIPTED_MODEL_ID = `${SCRIPTED_PROVIDER}/${SCRIPTED_MODEL}`;

/** opencode config that points opencode at a scripted model server. */
export function scriptedModelConfig(baseUrl: string): Record<string, unknown> {
  return {
    $schema: "https://opencode.ai/config.json",
    provider: {
      [SCRIPTED_PROVIDER]: {
        npm: "@ai-sdk/openai-compatible",
        name: "Ralph demo model (scripted, offline)",
        options: { baseURL: baseUrl, apiKey: "not-needed" },
        models: { [SCRIPTED_MODEL]: { name: "Scripted demo model", tool_call: true } },
      },
    },
    model: SCRIPTED_MODEL_ID,
    small_model: SCRIPTED_MODEL_ID,
  };
}
