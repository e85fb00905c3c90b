import { readFileSync } from "node:fs";

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
