import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isWritable } from "../util/access.js";

/** What one loop's sandbox may use. */
export interface Limits {
  memoryMb: number;
  /** Processes and threads, opencode's own included. */
  pids: number;
  /** CPU share against other loops: 100 is an equal share, 1-10000. */
  cpuWeight: number;
}

/** A loop's limits when nothing says otherwise. */
export const DEFAULT_LIMITS: Limits = { memoryMb: 4096, pids: 1024, cpuWeight: 100 };
/** The most a loop may ask for when the daemon's config sets no ceiling. */
export const MAX_LIMITS: Limits = { memoryMb: 16_384, pids: 4096, cpuWeight: 1000 };

/** How limits are enforced on this host. */
export type LimitsKind = "cgroup-v1" | "cgroup-v2" | "rlimit";

/** Times the sandbox ran into each limit (cgroups count them; rlimits cannot be watched from outside). */
export interface LimitHits {
  memory: number;
  pids: number;
}

/** Where the cgroup hierarchies are, and this process's place in them: the host's, or a test's copy. */
export interface CgroupHost {
  root: string;
  /** /proc/self/cgroup's text. */
  self: () => string;
  pid: number;
  uid: number;
}

const HOST: CgroupHost = { root: "/sys/fs/cgroup", self: () => readFileSync("/proc/self/cgroup", "utf8"), pid: process.pid, uid: process.getuid?.() ?? -1 };
const V1_CONTROLLERS = ["memory", "pids", "cpu"] as const;
const V2_CONTROLLERS = ["memory", "pids", "cpu"];
const RLIMITS = "rlimits: processes per sandbox (RLIMIT_NPROC in its user namespace), address space of each command the agent runs (RLIMIT_AS), CPU by nice";

/**
 * Where loops' cgroup v2 groups go: as root, a group of Ralph's own under
 * the root; otherwise the cgroup this process was given (systemd's
 * Delegate=yes), if it may write there. Undefined, with why, otherwise.
 */
function v2Base(host: CgroupHost): { base: string; delegated: boolean } | { why: string } {
  const available = (dir: string) => readFileSync(join(dir, "cgroup.controllers"), "utf8").trim().split(/\s+/);
  const missing = V2_CONTROLLERS.filter((c) => !available(host.root).includes(c));
  if (missing.length) return { why: `cgroup v2 lacks the ${missing.join(", ")} controller(s)` };
  if (host.uid === 0 && isWritable(host.root)) return { base: join(host.root, "ralph-remote"), delegated: false };
  const own = /^0::(\/.*)$/m.exec(host.self())?.[1];
  const dir = own ? join(host.root, own) : undefined;
  if (!dir || !isWritable(join(dir, "cgroup.procs")) || !isWritable(join(dir, "cgroup.subtree_control"))) {
    return { why: "cgroup v2 is not delegated to this user (run ralphd under systemd with Delegate=yes, or as root)" };
  }
  const lacking = V2_CONTROLLERS.filter((c) => !available(dir).includes(c));
  if (lacking.length) return { why: `the delegated cgroup ${own} lacks the ${lacking.join(", ")} controller(s) (Delegate=yes delegates them)` };
  return { base: dir, delegated: true };
}

/**
 * cgroup v1 with writable memory, pids and cpu controllers (root, typically);
 * else cgroup v2 as root or delegated; else rlimits.
 */
export function limitsKind(host: CgroupHost = HOST): { kind: LimitsKind; detail: string } {
  const v1 = V1_CONTROLLERS.every((c) => existsSync(join(host.root, c, "cgroup.procs")) && isWritable(join(host.root, c)));
  if (v1) return { kind: "cgroup-v1", detail: `cgroup v1 (${V1_CONTROLLERS.map((c) => join(host.root, c)).join(", ")})` };
  if (existsSync(join(host.root, "cgroup.controllers"))) {
    const v2 = v2Base(host);
    if ("base" in v2) return { kind: "cgroup-v2", detail: `cgroup v2 (${v2.base}${v2.delegated ? ", delegated" : ""})` };
    return { kind: "rlimit", detail: `${RLIMITS}; ${v2.why}` };
  }
  const why = V1_CONTROLLERS.every((c) => existsSync(join(host.root, c)))
    ? "the cgroup v1 controllers are not writable by this user (run ralphd as root)"
    : "no cgroup memory, pids and cpu controllers";
  return { kind: "rlimit", detail: `${RLIMITS}; ${why}` };
}

/** A loop's limits as enforced: cgroups to join before the sandbox starts, or rlimits applied inside it. */
export interface LimitGroup {
  kind: LimitsKind;
  limits: Limits;
  /** cgroup.procs files the sandbox's launcher joins before it starts anything. */
  procsFiles: string[];
  hits(): LimitHits;
  /** Removes the cgroups (once nothing is left in them). */
  remove(): void;
}

const counter = (file: string, key: string): number => {
  try {
    const m = new RegExp(`^${key} (\\d+)$`, "m").exec(readFileSync(file, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
};

const removeDirs = (dirs: string[]) => {
  for (const dir of dirs) {
    try {
      rmdirSync(dir);
    } catch {
      /* busy (a process still exiting) or gone: the next group of that name reuses it */
    }
  }
};

/** cgroup v1 CPU shares for a weight (100: the default 1024). */
const sharesOf = (weight: number) => Math.max(2, Math.round((weight * 1024) / 100));

function v1Group(host: CgroupHost, name: string, limits: Limits): LimitGroup {
  const dir = (c: (typeof V1_CONTROLLERS)[number]) => join(host.root, c, "ralph-remote", name);
  for (const c of V1_CONTROLLERS) mkdirSync(dir(c), { recursive: true });
  const bytes = String(limits.memoryMb * 1024 * 1024);
  writeFileSync(join(dir("memory"), "memory.limit_in_bytes"), bytes);
  // With swap accounting, swap counts too: no way round the limit by swapping.
  const memsw = join(dir("memory"), "memory.memsw.limit_in_bytes");
  if (existsSync(memsw)) writeFileSync(memsw, bytes);
  writeFileSync(join(dir("pids"), "pids.max"), String(limits.pids));
  writeFileSync(join(dir("cpu"), "cpu.shares"), String(sharesOf(limits.cpuWeight)));
  return {
    kind: "cgroup-v1",
    limits,
    procsFiles: V1_CONTROLLERS.map((c) => join(dir(c), "cgroup.procs")),
    hits: () => ({ memory: counter(join(dir("memory"), "memory.oom_control"), "oom_kill"), pids: counter(join(dir("pids"), "pids.events"), "max") }),
    remove: () => removeDirs(V1_CONTROLLERS.map(dir)),
  };
}

const enable = (dir: string) => writeFileSync(join(dir, "cgroup.subtree_control"), V2_CONTROLLERS.map((c) => `+${c}`).join(" "));

function v2Group(host: CgroupHost, name: string, limits: Limits): LimitGroup {
  const v2 = v2Base(host);
  if (!("base" in v2)) throw new Error(v2.why);
  mkdirSync(v2.base, { recursive: true });
  if (v2.delegated) {
    // No processes in a group that hands controllers down: this process moves to a leaf of its own first.
    const leaf = join(v2.base, "ralphd");
    mkdirSync(leaf, { recursive: true });
    writeFileSync(join(leaf, "cgroup.procs"), String(host.pid));
  } else {
    enable(host.root);
  }
  enable(v2.base);
  const dir = join(v2.base, `loop-${name}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "memory.max"), String(limits.memoryMb * 1024 * 1024));
  // Swap would be a way round the memory limit.
  if (existsSync(join(dir, "memory.swap.max"))) writeFileSync(join(dir, "memory.swap.max"), "0");
  writeFileSync(join(dir, "pids.max"), String(limits.pids));
  writeFileSync(join(dir, "cpu.weight"), String(limits.cpuWeight));
  return {
    kind: "cgroup-v2",
    limits,
    procsFiles: [join(dir, "cgroup.procs")],
    hits: () => ({ memory: counter(join(dir, "memory.events"), "oom_kill"), pids: counter(join(dir, "pids.events"), "max") }),
    remove: () => removeDirs([dir]),
  };
}

/**
 * The limit group of one sandbox, `name` unique on this host (e.g.
 * "box-1a2b3c4d"). A group of the same name left by a daemon that died is
 * reused.
 */
export function limitGroup(name: string, limits: Limits, kind: LimitsKind = limitsKind().kind, host: CgroupHost = HOST): LimitGroup {
  if (kind === "cgroup-v1") return v1Group(host, name, limits);
  if (kind === "cgroup-v2") return v2Group(host, name, limits);
  return { kind, limits, procsFiles: [], hits: () => ({ memory: 0, pids: 0 }), remove: () => undefined };
}

/** A nice value for a CPU weight, for hosts without cgroups: less than an equal share runs nicer. */
export const niceOf = (weight: number): number => (weight >= 100 ? 0 : Math.min(19, Math.round(19 * (1 - weight / 100))));
