import { InvalidInputError } from "../util/errors.js";
import type { NetRule } from "./net-rules.js";

/**
 * Where opencode's built-in providers send their requests when no config
 * names a baseURL (their SDKs' defaults), and the environment variables that
 * hold their keys.
 */
const BUILT_IN: Record<string, { host: string; env: string[] }> = {
  anthropic: { host: "api.anthropic.com", env: ["ANTHROPIC_API_KEY"] },
  openai: { host: "api.openai.com", env: ["OPENAI_API_KEY"] },
  google: { host: "generativelanguage.googleapis.com", env: ["GOOGLE_GENERATIVE_AI_API_KEY", "GEMINI_API_KEY"] },
  openrouter: { host: "openrouter.ai", env: ["OPENROUTER_API_KEY"] },
  groq: { host: "api.groq.com", env: ["GROQ_API_KEY"] },
  mistral: { host: "api.mistral.ai", env: ["MISTRAL_API_KEY"] },
  deepseek: { host: "api.deepseek.com", env: ["DEEPSEEK_API_KEY"] },
  xai: { host: "api.x.ai", env: ["XAI_API_KEY"] },
  togetherai: { host: "api.together.xyz", env: ["TOGETHER_AI_API_KEY"] },
  "fireworks-ai": { host: "api.fireworks.ai", env: ["FIREWORKS_API_KEY"] },
  cerebras: { host: "api.cerebras.ai", env: ["CEREBRAS_API_KEY"] },
  opencode: { host: "opencode.ai", env: ["OPENCODE_API_KEY"] },
};

type ProviderConfig = { options?: { baseURL?: unknown; apiKey?: unknown } };
export type OpencodeConfig = { provider?: Record<string, ProviderConfig>; model?: unknown; small_model?: unknown };

const providerOf = (model: unknown): string | undefined => (typeof model === "string" && model.includes("/") ? model.slice(0, model.indexOf("/")) : undefined);

function endpointOf(baseURL: string, provider: string): NetRule {
  let url: URL;
  try {
    url = new URL(baseURL);
  } catch {
    throw new InvalidInputError(`provider ${provider}'s baseURL is not a URL: fix it in the opencode config`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new InvalidInputError(`provider ${provider}'s baseURL must be http:// or https://`);
  const port = url.port ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
  return { host: url.hostname.replace(/^\[(.*)\]$/, "$1"), port };
}

/**
 * The endpoints of the providers a loop's model configuration offers, which
 * its sandbox may reach: every provider the config defines (its baseURL, else
 * the built-in default), every built-in provider whose key is in `env`, and
 * the provider of `model`. `pinned` (a daemon's sandbox.providers) limits
 * them; a model of a provider outside it is refused.
 */
export function modelEndpoints(opts: { config?: OpencodeConfig; env: Record<string, string>; model?: string; pinned?: string[] }): { rules: NetRule[]; providers: string[] } {
  const configured = opts.config?.provider ?? {};
  const offered = new Set<string>(Object.keys(configured));
  for (const [id, p] of Object.entries(BUILT_IN)) if (p.env.some((v) => opts.env[v])) offered.add(id);
  for (const m of [opts.model, opts.config?.model, opts.config?.small_model]) {
    const p = providerOf(m);
    if (p) offered.add(p);
  }
  const requested = providerOf(opts.model);
  if (opts.pinned) {
    if (requested && !opts.pinned.includes(requested)) {
      throw new InvalidInputError(`model ${opts.model} is of provider ${requested}, which this daemon does not offer (sandbox.providers: ${opts.pinned.join(", ")}): choose a model of those`);
    }
    for (const p of [...offered]) if (!opts.pinned.includes(p)) offered.delete(p);
  }
  const rules: NetRule[] = [];
  for (const id of offered) {
    const baseURL = configured[id]?.options?.baseURL;
    if (typeof baseURL === "string") rules.push(endpointOf(baseURL, id));
    else if (BUILT_IN[id]) rules.push({ host: BUILT_IN[id].host, port: 443 });
    else if (id === requested) {
      throw new InvalidInputError(
        `cannot tell which host provider ${id} answers on (no baseURL in the opencode config, and not a provider Ralph knows): allow its host with --allow-net HOST[:PORT] (ralphd: sandbox.allowNet)`,
      );
    }
  }
  return { rules, providers: [...offered].sort() };
}

/** Environment variables the config reads with {env:NAME}, and the built-in keys: what a local run passes into its sandbox. */
export function modelKeyNames(config: OpencodeConfig | undefined): string[] {
  const names = new Set(Object.values(BUILT_IN).flatMap((p) => p.env));
  const text = JSON.stringify(config ?? {});
  for (const m of text.matchAll(/\{env:([A-Za-z_][A-Za-z0-9_]*)\}/g)) names.add(m[1]!);
  return [...names];
}
