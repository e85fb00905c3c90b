import { accessSync, constants, cpSync, mkdirSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { cacheDir } from "../config/paths.js";

/**
 * The pinned ziti release. v1.7.2 is the newest the Go module proxy reachable
 * here serves; tools/ziti pins its module graph and checksums.
 */
export const ZITI_VERSION = "v1.7.2";
const ZITI_PACKAGE = "github.com/openziti/ziti/ziti";
const VERSION_LDFLAG = `-X github.com/openziti/ziti/common/version.Version=${ZITI_VERSION}`;

const toolsDir = (): string => join(dirname(fileURLToPath(import.meta.url)), "..", "..", "tools", "ziti");
export const cachedZitiPath = (): string => join(cacheDir(), "ziti", ZITI_VERSION, "ziti");

const isExecutable = (p: string): boolean => {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

export interface EnsureOptions {
  /** Progress lines for long steps (the build takes minutes). */
  onProgress?: (line: string) => void;
}

/** RALPH_ZITI_BIN, else the cached build, else builds it now. */
export async function ensureZitiBinary(opts: EnsureOptions = {}): Promise<string> {
  const fromEnv = process.env.RALPH_ZITI_BIN;
  if (fromEnv) {
    if (!isExecutable(fromEnv)) throw new Error(`RALPH_ZITI_BIN=${fromEnv} is not an executable file; fix the path or unset it to build ziti ${ZITI_VERSION}`);
    const v = await execa(fromEnv, ["version"], { reject: false, timeout: 15_000 });
    if (v.exitCode !== 0) throw new Error(`RALPH_ZITI_BIN=${fromEnv} does not run '${fromEnv} version' (exit ${v.exitCode}); point it at a ziti binary or unset it to build ziti ${ZITI_VERSION}`);
    return fromEnv;
  }
  const cached = cachedZitiPath();
  if (isExecutable(cached)) return cached;
  await buildZiti(cached, opts.onProgress ?? (() => undefined));
  return cached;
}

async function buildZiti(target: string, progress: (line: string) => void): Promise<void> {
  const go = await execa("go", ["version"], { reject: false }).catch(() => undefined);
  if (!go || go.exitCode !== 0) {
    throw new Error(`building ziti ${ZITI_VERSION} needs the Go toolchain (1.25 or newer): install Go (https://go.dev/doc/install or 'apt-get install golang'), or set RALPH_ZITI_BIN to an existing ziti binary`);
  }
  const work = mkdtempSync(join(tmpdir(), "ralph-ziti-build-"));
  try {
    cpSync(toolsDir(), work, { recursive: true });
    mkdirSync(dirname(target), { recursive: true });
    const out = join(work, "ziti");
    progress(`building ziti ${ZITI_VERSION} from the Go module proxy (${go.stdout.trim()}); this takes a few minutes on first run`);
    const t0 = Date.now();
    let last = "";
    const child = execa("go", ["build", "-o", out, "-ldflags", VERSION_LDFLAG, ZITI_PACKAGE], {
      cwd: work,
      env: { GOFLAGS: "-mod=readonly -buildvcs=false" },
      all: true,
      reject: false,
    });
    child.all?.on("data", (d: Buffer) => {
      const lines = d.toString().trim().split("\n");
      last = lines[lines.length - 1] ?? last;
    });
    const beat = setInterval(() => progress(`  ... ${Math.round((Date.now() - t0) / 1000)}s${last ? `: ${last.slice(0, 100)}` : ""}`), 15_000);
    const r = await child.finally(() => clearInterval(beat));
    if (r.exitCode !== 0) {
      throw new Error(`go build of ziti ${ZITI_VERSION} failed (exit ${r.exitCode}):\n${(r.all ?? "").split("\n").slice(-15).join("\n")}\nCheck that the Go module proxy is reachable (GOPROXY) and Go is 1.25 or newer, or set RALPH_ZITI_BIN`);
    }
    const staged = `${target}.${process.pid}.tmp`;
    cpSync(out, staged);
    renameSync(staged, target);
    progress(`built ziti ${ZITI_VERSION} in ${Math.round((Date.now() - t0) / 1000)}s -> ${target}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
