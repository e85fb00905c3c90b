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
export type LimitsKind = "cgroup-v1" | "rlimit";

/** Times the sandbox ran into each limit (cgroups count them; rlimits cannot be watched from outside). */
export interface LimitHits {
  memory: number;
  pids: number;
}

const V1 = "/sys/fs/cgroup";
const V1_CONTROLLERS = ["memory", "pids", "cpu"] as const;

/**
 * cgroup v1 with the memory, pids and cpu controllers this process may create
 * groups in (root, typically), else rlimits. cgroup v2 delegation is not used
 * yet: such a host gets rlimits.
 */
export function limitsKind(): { kind: LimitsKind; detail: string } {
  const v1 = V1_CONTROLLERS.every((c) => existsSync(join(V1, c, "cgroup.procs")) && isWritable(join(V1, c)));
  if (v1) return { kind: "cgroup-v1", detail: `cgroup v1 (${V1_CONTROLLERS.map((c) => join(V1, c)).join(", ")})` };
  const why = existsSync(join(V1, "cgroup.controllers"))
    ? "cgroup v2 delegation is not supported yet"
    : V1_CONTROLLERS.every((c) => existsSync(join(V1, c)))
      ? "the cgroup v1 controllers are not writable by this user (run ralphd as root, or give it a delegated cgroup)"
      : "no cgroup memory, pids and cpu controllers";
  return { kind: "rlimit", detail: `rlimits: processes per sandbox (RLIMIT_NPROC in its user namespace), address space of each command the agent runs (RLIMIT_AS), CPU by nice; ${why}` };
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

/** cgroup v1 CPU shares for a weight (100: the default 1024). */
const sharesOf = (weight: number) => Math.max(2, Math.round((weight * 1024) / 100));

/**
 * The limit group of one sandbox, `name` unique on this host (e.g.
 * "ralphd-box-1a2b3c4d"). A group of the same name left by a daemon that died
 * is reused.
 */
export function limitGroup(name: string, limits: Limits, kind: LimitsKind = limitsKind().kind): LimitGroup {
  if (kind === "rlimit") return { kind, limits, procsFiles: [], hits: () => ({ memory: 0, pids: 0 }), remove: () => undefined };
  const dir = (c: (typeof V1_CONTROLLERS)[number]) => join(V1, c, "ralph-remote", name);
  for (const c of V1_CONTROLLERS) mkdirSync(dir(c), { recursive: true });
  const bytes = String(limits.memoryMb * 1024 * 1024);
  writeFileSync(join(dir("memory"), "memory.limit_in_bytes"), bytes);
  // With swap accounting, swap counts too: no way round the limit by swapping.
  const memsw = join(dir("memory"), "memory.memsw.limit_in_bytes");
  if (existsSync(memsw)) writeFileSync(memsw, bytes);
  writeFileSync(join(dir("pids"), "pids.max"), String(limits.pids));
  writeFileSync(join(dir("cpu"), "cpu.shares"), String(sharesOf(limits.cpuWeight)));
  return {
    kind,
    limits,
    procsFiles: V1_CONTROLLERS.map((c) => join(dir(c), "cgroup.procs")),
    hits: () => ({ memory: counter(join(dir("memory"), "memory.oom_control"), "oom_kill"), pids: counter(join(dir("pids"), "pids.events"), "max") }),
    remove: () => {
      for (const c of V1_CONTROLLERS) {
        try {
          rmdirSync(dir(c));
        } catch {
          /* busy (a process still exiting) or gone: the next group of that name reuses it */
        }
      }
    },
  };
}

/** A nice value for a CPU weight, for hosts without cgroups: less than an equal share runs nicer. */
export const niceOf = (weight: number): number => (weight >= 100 ? 0 : Math.min(19, Math.round(19 * (1 - weight / 100))));
