import { accessSync, constants } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { execa } from "execa";
import { UnavailableError } from "../util/errors.js";

/**
 * The opencode binary: RALPH_OPENCODE_BIN, else the one the opencode-ai npm
 * package installed next to this package (resolved from here, not the cwd).
 */
export function opencodeBinary(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.RALPH_OPENCODE_BIN;
  if (fromEnv) {
    try {
      accessSync(fromEnv, constants.X_OK);
    } catch {
      throw new UnavailableError(`RALPH_OPENCODE_BIN=${fromEnv} is not an executable file; fix the path or unset it to use the bundled opencode`);
    }
    return fromEnv;
  }
  let pkgDir: string;
  try {
    pkgDir = dirname(createRequire(import.meta.url).resolve("opencode-ai/package.json"));
  } catch {
    throw new UnavailableError("opencode is not installed: run 'npm ci' in the ralph-remote checkout, or set RALPH_OPENCODE_BIN");
  }
  const bin = join(pkgDir, "bin", "opencode.exe");
  try {
    accessSync(bin, constants.X_OK);
  } catch {
    throw new UnavailableError(`the opencode-ai package has no usable binary at ${bin}: reinstall with 'npm ci' (its postinstall step must run), or set RALPH_OPENCODE_BIN`);
  }
  return bin;
}

let version: Promise<string> | undefined;
/** `opencode --version`, asked once per process, without blocking it. */
export function opencodeVersion(): Promise<string> {
  if (!version) {
    version = execa(opencodeBinary(), ["--version"], { timeout: 30_000 }).then((r) => r.stdout.trim());
    version.catch(() => (version = undefined));
  }
  return version;
}
