import { readFileSync } from "node:fs";
import type { DaemonConfig } from "./config.js";

/** What every loop's opencode gets from the daemon: secrets from the env file, and the daemon-wide opencode config. */
export interface OpencodeSettings {
  env: Record<string, string>;
  config?: Record<string, unknown>;
}

/** KEY=VALUE lines (model API keys) for opencode. Values are never logged. */
export function readEnvFile(file: string | undefined): Record<string, string> {
  if (!file) return {};
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new Error(`cannot read envFile ${file}: fix the path in the daemon config or remove the setting`);
  }
  const env: Record<string, string> = {};
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) throw new Error(`envFile ${file} line ${i + 1} is not KEY=VALUE`);
    env[m[1]!] = m[2]!.replace(/^(["'])(.*)\1$/, "$2");
  });
  return env;
}

function readOpencodeConfig(file: string | undefined): Record<string, unknown> | undefined {
  if (!file) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new Error(`cannot read opencodeConfigFile ${file} as JSON (${(err as Error).message}): fix it or remove the setting`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error(`opencodeConfigFile ${file} must hold a JSON object (an opencode.json)`);
  return value as Record<string, unknown>;
}

export const opencodeSettings = (config: DaemonConfig): OpencodeSettings => ({ env: readEnvFile(config.envFile), config: readOpencodeConfig(config.opencodeConfigFile) });
