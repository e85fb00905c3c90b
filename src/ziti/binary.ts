import { createHash } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { execa } from "execa";
import { cacheDir } from "../config/paths.js";
import { BuildProgress } from "./build-progress.js";
import { isExecutable } from "../util/access.js";
import { UnavailableError } from "../util/errors.js";
import { PACKAGE_ROOT } from "../version.js";
import { ZITI_VERSION } from "./defaults.js";

// v1.7.2 is the newest the Go module proxy reachable here serves; tools/ziti pins its module graph and checksums.
export { ZITI_VERSION };

const toolsDir = (): string => join(PACKAGE_ROOT, "tools", "ziti");

/**
 * Our own Go programs' cache key is their content: the program's package, the
 * packages they share (internal/) and the module graph (hashed once per
 * process).
 */
const sourceHashes = new Map<string, string>();
const sourceKey = (pkgDir: string): string => {
  let key = sourceHashes.get(pkgDir);
  if (key) return key;
  const hash = createHash("sha256");
  for (const dir of [pkgDir, "internal"]) {
    const files = readdirSync(join(toolsDir(), dir), { recursive: true, encoding: "utf8" })
      .filter((f) => f.endsWith(".go"))
      .sort();
    for (const f of files) hash.update(`${dir}/${f}\0`).update(readFileSync(join(toolsDir(), dir, f)));
  }
  key = hash.update(readFileSync(join(toolsDir(), "go.sum"))).digest("hex").slice(0, 12);
  sourceHashes.set(pkgDir, key);
  return key;
};

interface GoProgram {
  /** What the user sees in progress and errors. */
  title: string;
  /** Environment variable naming an existing binary instead. */
  envVar: string;
  /** Arguments the env-var binary must run with exit 0, to show it is the right program. */
  probeArgs: string[];
  pkg: string;
  ldflags: string[];
  cachePath: () => string;
}

const programs = {
  ziti: {
    title: `ziti ${ZITI_VERSION}`,
    envVar: "RALPH_ZITI_BIN",
    probeArgs: ["version"],
    pkg: "github.com/openziti/ziti/ziti",
    // Without it the binary reports v0.0.0.
    ldflags: ["-ldflags", `-X github.com/openziti/ziti/common/version.Version=${ZITI_VERSION}`],
    cachePath: () => join(cacheDir(), "ziti", ZITI_VERSION, "ziti"),
  },
  dialer: {
    title: "ralph-ziti-dial (the client's loopback-only dialer)",
    envVar: "RALPH_ZITI_DIAL_BIN",
    probeArgs: ["-h"],
    pkg: "./dialer",
    ldflags: [],
    cachePath: () => join(cacheDir(), "ziti", ZITI_VERSION, `ralph-ziti-dial-${sourceKey("dialer")}`),
  },
  host: {
    title: "ralph-ziti-host (the daemon's host for its services)",
    envVar: "RALPH_ZITI_HOST_BIN",
    probeArgs: ["-h"],
    pkg: "./host",
    ldflags: [],
    cachePath: () => join(cacheDir(), "ziti", ZITI_VERSION, `ralph-ziti-host-${sourceKey("host")}`),
  },
} satisfies Record<string, GoProgram>;


export interface EnsureOptions {
  /** Progress lines for long steps (the build takes minutes). */
  onProgress?: (line: string) => void;
}

/** Binaries found (and, for an env var, probed) in this process, by where they were looked for. */
const located = new Map<string, string>();

/** The env-var binary (checked) or the cached build; undefined when it has yet to be built. */
async function locateProgram(p: GoProgram): Promise<string | undefined> {
  const fromEnv = process.env[p.envVar];
  const key = `${p.envVar}=${fromEnv ?? ""}\0${p.cachePath()}`;
  const known = located.get(key);
  if (known && isExecutable(known)) return known;
  const found = await probeProgram(p, fromEnv);
  if (found) located.set(key, found);
  return found;
}

async function probeProgram(p: GoProgram, fromEnv: string | undefined): Promise<string | undefined> {
  if (fromEnv) {
    if (!isExecutable(fromEnv)) throw new UnavailableError(`${p.envVar}=${fromEnv} is not an executable file; fix the path or unset it to build ${p.title}`);
    const v = await execa(fromEnv, p.probeArgs, { reject: false, timeout: 15_000 });
    if (v.exitCode !== 0) {
      throw new UnavailableError(`${p.envVar}=${fromEnv} does not run '${fromEnv} ${p.probeArgs.join(" ")}' (exit ${v.exitCode}); point it at ${p.title} or unset it to build it`);
    }
    return fromEnv;
  }
  const cached = p.cachePath();
  return isExecutable(cached) ? cached : undefined;
}

async function ensureProgram(p: GoProgram, opts: EnsureOptions): Promise<string> {
  const found = await locateProgram(p);
  if (found) return found;
  await goBuild(p, p.cachePath(), opts.onProgress ?? (() => undefined));
  return p.cachePath();
}

/** The host helper if it is there, without building it; the error says how to get it. */
export async function locateHostBinary(): Promise<string> {
  const found = await locateProgram(programs.host);
  if (!found) throw new UnavailableError(`${programs.host.title} is not built yet: run 'ralph ziti install' (it builds and caches it), or set RALPH_ZITI_HOST_BIN`);
  return found;
}

/** RALPH_ZITI_BIN, else the cached build, else builds it now. */
export const ensureZitiBinary = (opts: EnsureOptions = {}): Promise<string> => ensureProgram(programs.ziti, opts);

/** RALPH_ZITI_DIAL_BIN, else the cached build, else builds it now. */
export const ensureDialerBinary = (opts: EnsureOptions = {}): Promise<string> => ensureProgram(programs.dialer, opts);

/** RALPH_ZITI_HOST_BIN, else the cached build, else builds it now. */
export const ensureHostBinary = (opts: EnsureOptions = {}): Promise<string> => ensureProgram(programs.host, opts);

async function goBuild(p: GoProgram, target: string, progress: (line: string) => void): Promise<void> {
  const go = await execa("go", ["version"], { reject: false }).catch(() => undefined);
  if (!go || go.exitCode !== 0) {
    throw new UnavailableError(`building ${p.title} needs the Go toolchain (1.25 or newer): install Go (https://go.dev/doc/install or 'apt-get install golang'), or set ${p.envVar} to an existing binary`);
  }
  const work = mkdtempSync(join(tmpdir(), "ralph-ziti-build-"));
  try {
    cpSync(toolsDir(), work, { recursive: true });
    mkdirSync(dirname(target), { recursive: true });
    const out = join(work, "out");
    progress(`building ${p.title} from the Go module proxy (${go.stdout.trim()}); the first build takes a few minutes`);
    const env = { GOFLAGS: "-mod=readonly -buildvcs=false" };
    const state = new BuildProgress();
    const follow = (child: ReturnType<typeof execa>) => {
      let pending = "";
      child.all?.on("data", (d: Buffer) => {
        const lines = (pending + d.toString()).split("\n");
        pending = lines.pop() ?? "";
        for (const l of lines) state.line(l);
      });
      return child;
    };
    const failed = (r: { exitCode?: number; all?: string }) =>
      new UnavailableError(
        `go build of ${p.title} failed (exit ${r.exitCode}):\n${(r.all ?? "").split("\n").slice(-15).join("\n")}\nCheck that the Go module proxy is reachable (GOPROXY) and Go is 1.25 or newer, or set ${p.envVar}`,
      );
    const beat = setInterval(() => progress(`  ${state.describe()}`), 10_000);
    try {
      // Listing the packages first downloads the modules, and counts what there is to compile.
      const listed = await follow(execa("go", ["list", "-deps", "-f", "{{.ImportPath}}", p.pkg], { cwd: work, env, all: true, reject: false, stdout: "pipe" }));
      if (listed.exitCode !== 0) throw failed({ exitCode: listed.exitCode, all: String(listed.all ?? "") });
      state.compiling(String(listed.stdout).split("\n").filter(Boolean).length);
      progress(`  ${state.describe()}`);
      const r = await follow(execa("go", ["build", "-v", "-o", out, ...p.ldflags, p.pkg], { cwd: work, env, all: true, reject: false }));
      if (r.exitCode !== 0) throw failed({ exitCode: r.exitCode, all: String(r.all ?? "") });
    } finally {
      clearInterval(beat);
    }
    const staged = `${target}.${process.pid}.tmp`;
    cpSync(out, staged);
    renameSync(staged, target);
    progress(`built ${p.title} in ${state.elapsed()} -> ${target}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
