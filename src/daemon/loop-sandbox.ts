import { existsSync } from "node:fs";
import { join } from "node:path";
import { ApiError } from "../contract/errors.js";
import type { StartLoopRequest } from "../contract/schemas.js";
import type { SandboxInfo } from "../sandbox/info.js";
import type { Limits } from "../sandbox/limits.js";
import { modelEndpoints, type OpencodeConfig } from "../sandbox/model-endpoints.js";
import { formatNetRule, parseNetRule, uniqueRules, type NetRule } from "../sandbox/net-rules.js";
import { sandboxSupport } from "../sandbox/probe.js";
import type { SandboxPlan } from "../sandbox/sandbox.js";
import { homeDir } from "../config/paths.js";
import type { DaemonConfig } from "./config.js";
import type { OpencodeSettings } from "./opencode-settings.js";
import type { LoopRow } from "./store.js";

/** The file a running ralphd touches, which its loops' sandboxes watch to know it is there. */
export const heartbeatFile = (): string => join(homeDir("daemon", "run"), "heartbeat");

/** Where a loop's sandbox keeps its HOME, /tmp and sockets, under the daemon's per-loop state. */
export const sandboxDirOf = (workspaceDir: string, id: string): string => join(workspaceDir, "state", id, "box");

/**
 * ralphd as root runs each loop as an unprivileged user of its own, far above
 * any real account (uids below 2^31, which every tool handles).
 */
export function sandboxUserOf(id: string): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = 1_800_000_000 + (Number.parseInt(id, 16) % 100_000_000);
  return { uid, gid: uid };
}

function resolveLimits(sandbox: Exclude<DaemonConfig["sandbox"], "off">, asked: StartLoopRequest["limits"]): Limits {
  const { default: def, max } = sandbox.limits;
  const limits = { ...def, ...asked };
  for (const k of ["memoryMb", "pids", "cpuWeight"] as const) {
    if (limits[k] > max[k]) throw new ApiError("invalid_request", `limits.${k} ${limits[k]} is above this daemon's ceiling of ${max[k]} (sandbox.limits.max in its config): ask for less`);
  }
  return limits;
}

/**
 * What a new loop's sandbox will be, checked before the loop exists: refused
 * when no sandbox can be made on this host, when an allowed host is not one,
 * when a limit is above the daemon's ceiling, or when the model's endpoint is
 * unknown. Opting out is the daemon's config alone (sandbox: "off").
 */
export async function plannedSandbox(config: DaemonConfig, settings: OpencodeSettings, req: StartLoopRequest): Promise<SandboxInfo> {
  if (config.sandbox === "off") return { mode: "off" };
  const support = await sandboxSupport();
  if (support.problem) throw new ApiError("unavailable", `this daemon cannot sandbox loops: ${support.problem}`);
  const missing = config.sandbox.readOnly.filter((p) => !existsSync(p));
  if (missing.length) throw new ApiError("unavailable", `sandbox.readOnly in this daemon's config names ${missing.join(", ")}, which does not exist here: fix the path or remove it`);
  let asked: NetRule[];
  let endpoints: NetRule[];
  try {
    asked = [...config.sandbox.allowNet, ...(req.allowNet ?? [])].map(parseNetRule);
    endpoints = modelEndpoints({ config: settings.config as OpencodeConfig | undefined, env: settings.env, model: req.model, pinned: config.sandbox.providers }).rules;
  } catch (err) {
    throw new ApiError("invalid_request", (err as Error).message);
  }
  return { mode: "on", enforcement: support.limits.kind, limits: resolveLimits(config.sandbox, req.limits), allowNet: uniqueRules([...endpoints, ...asked]).map(formatNetRule) };
}

/** The plan a loop's opencode starts (or is adopted) with, from what its row recorded at start. */
export function sandboxPlanOf(
  config: DaemonConfig,
  row: LoopRow,
  mounts: { rw: string[]; ro: string[] },
  onRefused: (host: string, port: number) => void,
): SandboxPlan {
  const info = row.sandbox;
  return {
    enabled: info.mode === "on",
    name: `${config.name}-${row.id}`,
    dir: sandboxDirOf(config.workspaceDir, row.id),
    worktree: row.worktree,
    rw: mounts.rw,
    ro: mounts.ro,
    readOnly: config.sandbox === "off" ? [] : config.sandbox.readOnly,
    allow: (info.allowNet ?? []).map(parseNetRule),
    limits: info.limits ?? { memoryMb: 0, pids: 0, cpuWeight: 100 },
    user: sandboxUserOf(row.id),
    orphan: { heartbeat: heartbeatFile(), seconds: config.orphanStopSeconds },
    onRefused,
  };
}

/** opencode config the daemon adds when it pins providers: a repository's own config cannot enable another. */
export function pinnedProviders(config: DaemonConfig): Record<string, unknown> | undefined {
  return config.sandbox !== "off" && config.sandbox.providers ? { enabled_providers: config.sandbox.providers } : undefined;
}
