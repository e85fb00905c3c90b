import { readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { ralphHome } from "../config/paths.js";
import { DEFAULT_LIMITS, MAX_LIMITS } from "../sandbox/limits.js";
import { parseNetRule } from "../sandbox/net-rules.js";
import { NotifyTargetSchema } from "./notify.js";

export const ControllerAuthSchema = z.discriminatedUnion("method", [
  z.strictObject({ method: z.literal("password"), username: z.string().min(1), passwordFile: z.string().min(1) }),
  z.strictObject({ method: z.literal("cert"), certFile: z.string().min(1), keyFile: z.string().min(1) }),
]);

/** How the admin side (ralph ziti, tests) reaches a controller's management API; never part of a daemon's config. */
export const ControllerSchema = z.strictObject({
  /** e.g. https://127.0.0.1:1280 (the edge management API lives under it). */
  url: z.url(),
  /** PEM bundle that signs the controller's certificate. Always verified. */
  caFile: z.string().min(1),
  auth: ControllerAuthSchema,
});

const hostRule = z.string().superRefine((text, ctx) => {
  try {
    parseNetRule(text);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: (err as Error).message });
  }
});

export const LimitsSchema = z.strictObject({
  memoryMb: z.number().int().min(64).max(1024 * 1024),
  pids: z.number().int().min(16).max(1_000_000),
  /** CPU share against other loops: 100 is an equal share. */
  cpuWeight: z.number().int().min(1).max(10_000),
});

/** Every loop runs in a sandbox unless this says "off" (the agent then reaches everything ralphd's user can). */
export const SandboxConfigSchema = z.union([
  z.literal("off"),
  z.strictObject({
    /** HOST[:PORT] every loop may reach besides its model provider (e.g. a package registry). */
    allowNet: z.array(hostRule).default([]),
    /** Host paths shown read-only in every sandbox besides the system (e.g. a toolchain under a home directory). */
    readOnly: z.array(z.string().startsWith("/", "an absolute path")).default([]),
    /** The only providers loops may use (opencode's enabled_providers): a repository's opencode.json cannot switch to another. */
    providers: z.array(z.string().min(1)).min(1).optional(),
    /** Each loop's limits unless its start request asks for others, and the most any may ask for. */
    limits: z
      .strictObject({ default: LimitsSchema.default(DEFAULT_LIMITS), max: LimitsSchema.default(MAX_LIMITS) })
      .refine((l) => l.default.memoryMb <= l.max.memoryMb && l.default.pids <= l.max.pids && l.default.cpuWeight <= l.max.cpuWeight, "a default limit is above its max")
      .default({ default: DEFAULT_LIMITS, max: MAX_LIMITS }),
  }),
]);
export type SandboxConfig = z.infer<typeof SandboxConfigSchema>;

export const DaemonConfigSchema = z.strictObject({
  /** The daemon's name; its control service is ralph-control-NAME. */
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,39}$/, "lower-case letters, digits and dashes, at most 40"),
  /**
   * Enrolled Ziti identity file (JSON): the daemon's only Ziti credential. It
   * names the controller; the admin side provisions the daemon's services.
   */
  identityFile: z.string().min(1),
  workspaceDir: z.string().min(1),
  maxConcurrentLoops: z.number().int().min(1).max(64).default(4),
  loopTimeLimitSeconds: z.number().int().min(60).default(24 * 3600),
  /** KEY=VALUE lines passed to opencode (model API keys); never logged. */
  envFile: z.string().optional(),
  /** An opencode.json merged over every loop's repo config: providers and models this daemon offers. */
  opencodeConfigFile: z.string().optional(),
  /** Budgets: defaults for loops started without one, and ceilings no request may exceed. */
  budget: z
    .strictObject({
      defaultMaxCostUsd: z.number().positive().optional(),
      defaultMaxTokens: z.number().int().positive().optional(),
      maxCostUsd: z.number().positive().optional(),
      maxTokens: z.number().int().positive().optional(),
    })
    .refine((b) => !(b.defaultMaxCostUsd && b.maxCostUsd && b.defaultMaxCostUsd > b.maxCostUsd), "defaultMaxCostUsd is above the maxCostUsd ceiling")
    .refine((b) => !(b.defaultMaxTokens && b.maxTokens && b.defaultMaxTokens > b.maxTokens), "defaultMaxTokens is above the maxTokens ceiling")
    .default({}),
  /** An iteration with no activity from opencode for this long is aborted as stalled. */
  stallTimeoutSeconds: z.number().int().min(5).max(24 * 3600).default(300),
  /** How loops answer opencode's permission requests; nobody is there to. Questions always get "no human is available". */
  permissionPolicy: z.enum(["reject", "allow"]).default("reject"),
  /**
   * URL prefixes origins must start with (e.g. "https://github.com/acme/");
   * omitted: any file://, https://, ssh:// or scp-style origin. file://
   * origins inside the workspace or RALPH_HOME are refused regardless.
   */
  allowedOrigins: z.array(z.string().min(1)).min(1).optional(),
  /** How long a finished loop's worktree and opencode log stay for inspection before pruning removes them. */
  retention: z.strictObject({ worktreeDays: z.number().min(0).max(3650).default(7) }).default({ worktreeDays: 7 }),
  /** How often the daemon compares its Ziti registrations with its running loops (also at start). */
  reconcileIntervalSeconds: z.number().int().min(5).max(86_400).default(300),
  /** Where the daemon reports loops that end, stall or ask. */
  notify: z.array(NotifyTargetSchema).default([]),
  /**
   * What a stop of ralphd (SIGTERM: systemctl stop or restart, an upgrade)
   * does to running loops: "keep-loops" leaves them running for the next
   * ralphd to re-adopt; "stop-loops" ends them ('ralphd stop --loops' does
   * that once).
   */
  shutdown: z.enum(["keep-loops", "stop-loops"]).default("keep-loops"),
  /** Loops left by a ralphd that does not come back stop themselves after this long. */
  orphanStopSeconds: z.number().int().min(3).max(30 * 86_400).default(3600),
  sandbox: SandboxConfigSchema.default({ allowNet: [], readOnly: [], limits: { default: DEFAULT_LIMITS, max: MAX_LIMITS } }),
});

export type DaemonConfig = z.infer<typeof DaemonConfigSchema>;
export type ControllerConfig = z.infer<typeof ControllerSchema>;

export const defaultDaemonConfigPath = (): string => join(ralphHome(), "daemon", "config.json");

/** Keys of earlier releases that must not linger: the reason and what to do. */
export function retiredKeyMessage(json: unknown): string | undefined {
  if (typeof json !== "object" || json === null) return undefined;
  if (Object.hasOwn(json, "controller")) {
    return "controller: ralphd needs no admin credentials any more: delete the controller key, and its password file from this machine; 'ralph ziti up' rewrites the local config";
  }
  if (Object.hasOwn(json, "hostTunneler")) {
    return "hostTunneler: ralphd hosts its services with its own helper (ralph-ziti-host) now: delete the hostTunneler key";
  }
  return undefined;
}

export function loadDaemonConfig(path = defaultDaemonConfigPath()): DaemonConfig {
  let raw: string;
  try {
    raw = readFileSync(path, "utf8");
  } catch {
    throw new Error(`no daemon config at ${path}: run 'ralph ziti up' for the local network, 'ralphd join --token FILE' to join another machine's, or pass --config FILE`);
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (err) {
    throw new Error(`daemon config ${path} is not valid JSON: ${(err as Error).message}`);
  }
  const retired = retiredKeyMessage(json);
  if (retired) throw new Error(`daemon config ${path}: ${retired}`);
  const parsed = DaemonConfigSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`daemon config ${path}: ${issue?.path.join(".") || "(root)"}: ${issue?.message}`);
  }
  return parsed.data;
}
