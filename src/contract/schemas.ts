import { z } from "zod";
import { UsageSchema } from "../loop/usage-schema.js";
import { SandboxInfoSchema } from "../sandbox/info.js";
import { ERROR_CODES } from "./errors.js";
import { BOUNDS } from "./bounds.js";
import { firstControl } from "../util/text.js";
import { LoopStateSchema } from "./events.js";

export const ErrorBodySchema = z.object({ error: z.object({ code: z.enum(ERROR_CODES), message: z.string() }) });
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

/** Strings that git could read as an option, or that smuggle control characters. */
const notAnOption = (what: string) =>
  z
    .string()
    .min(1)
    .max(1024)
    .refine((s) => !s.startsWith("-"), `${what} must not start with '-' (it could be read as a git option)`)
    .refine((s) => !/[\x00-\x1f\x7f]/.test(s), `${what} must not contain control characters`);

export const StartLoopRequestSchema = z.strictObject({
  origin: notAnOption("origin"),
  branch: notAnOption("branch"),
  /** Relative to the repository root. */
  taskDir: notAnOption("taskDir"),
  maxIterations: z.number().int().min(BOUNDS.maxIterations.min).max(BOUNDS.maxIterations.max).default(10),
  model: z.string().regex(/^[A-Za-z0-9._-]+\/[A-Za-z0-9._:/-]+$/, "model must be written provider/model").optional(),
  iterationTimeoutSeconds: z.number().int().min(BOUNDS.iterationTimeoutSeconds.min).max(BOUNDS.iterationTimeoutSeconds.max).default(1800),
  /** Omitted: the daemon's default (stallTimeoutSeconds in its config). */
  stallTimeoutSeconds: z.number().int().min(BOUNDS.stallTimeoutSeconds.min).max(BOUNDS.stallTimeoutSeconds.max).optional(),
  /** Omitted: the daemon's default budget; never above its ceiling. */
  maxCostUsd: z.number().positive().max(BOUNDS.maxCostUsd.max).optional(),
  maxTokens: z.number().int().min(BOUNDS.maxTokens.min).max(BOUNDS.maxTokens.max).optional(),
  /** HOST[:PORT] this loop's sandbox may reach besides its model and the daemon's allowlist. */
  allowNet: z.array(z.string().min(1).max(300)).max(32).optional(),
  /** Omitted parts: the daemon's defaults; never above its ceilings. */
  limits: z.strictObject({ memoryMb: z.number().int().positive().optional(), pids: z.number().int().positive().optional(), cpuWeight: z.number().int().positive().optional() }).optional(),
});
export type StartLoopRequest = z.infer<typeof StartLoopRequestSchema>;
/** What a client sends: the defaults are the daemon's to fill in. */
export type StartLoopInput = z.input<typeof StartLoopRequestSchema>;

/** The owner's guidance for a running loop's next iteration ('ralph say'). */
export const SayRequestSchema = z.strictObject({
  text: z
    .string()
    .trim()
    .min(1, "text must not be empty")
    .max(16 * 1024, "text is over 16 KiB")
    .superRefine((t, ctx) => {
      const c = firstControl(t);
      if (c) ctx.addIssue({ code: "custom", message: `text holds the control character ${c.hex} at offset ${c.offset}: guidance is plain text (newlines and tabs are fine)` });
    }),
});
export const SayResponseSchema = z.object({ loopId: z.string(), pending: z.number() });

export const LoopSummarySchema = z.object({
  id: z.string(),
  origin: z.string(),
  branch: z.string(),
  taskDir: z.string(),
  status: LoopStateSchema,
  iteration: z.number(),
  maxIterations: z.number(),
  iterationTimeoutSeconds: z.number(),
  stallTimeoutSeconds: z.number(),
  maxCostUsd: z.number().nullable(),
  maxTokens: z.number().nullable(),
  usage: UsageSchema,
  storyId: z.string().nullable(),
  passed: z.number(),
  total: z.number(),
  model: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
  endedAt: z.string().nullable(),
  reason: z.string().nullable(),
  prunedAt: z.string().nullable(),
  service: z.string().nullable(),
  sandbox: SandboxInfoSchema,
});
export type LoopSummary = z.infer<typeof LoopSummarySchema>;
export const LoopEnvelopeSchema = z.object({ loop: LoopSummarySchema });
export const LoopListSchema = z.object({ loops: z.array(LoopSummarySchema) });

export const DiskUsageSchema = z.object({
  totalBytes: z.number(),
  /** Worktrees of running loops and of finished ones not yet pruned. */
  worktreesBytes: z.number(),
  /** One bare mirror per origin in use. */
  mirrorsBytes: z.number(),
  /** Per-loop opencode data and logs, and the state DB. */
  stateBytes: z.number(),
  measuredAt: z.string(),
});
export type DiskUsage = z.infer<typeof DiskUsageSchema>;

export const HealthSchema = z.object({
  name: z.string(),
  healthy: z.boolean(),
  uptimeSeconds: z.number(),
  loops: z.object({ active: z.number(), total: z.number(), max: z.number() }),
  /** Clients streaming events now, and how many may. */
  followers: z.object({ active: z.number(), max: z.number() }),
  load: z.array(z.number()),
  memory: z.object({ rssBytes: z.number() }),
  /** The daemon's worktrees, mirrors and state on disk, as last measured; null before the first measurement. */
  disk: DiskUsageSchema.nullable(),
  versions: z.object({ ralph: z.string(), node: z.string(), ziti: z.string(), opencode: z.string() }),
});
export type Health = z.infer<typeof HealthSchema>;

export const CatalogSchema = z.object({
  /** "provider/model" ids a loop may be started with. */
  models: z.array(z.object({ id: z.string(), name: z.string(), provider: z.string() })),
  /** Default model per provider, as opencode reports it. */
  defaults: z.record(z.string(), z.string()),
  agents: z.array(z.object({ name: z.string(), mode: z.string(), description: z.string().optional() })),
  checkedAt: z.string(),
});
export type Catalog = z.infer<typeof CatalogSchema>;

export const PruneResultSchema = z.object({
  /** Loops whose worktree and log were removed. */
  loops: z.array(z.string()),
  mirrors: z.number(),
  freedBytes: z.number(),
});
export type PruneResult = z.infer<typeof PruneResultSchema>;

export const DeliveryResultSchema = z.object({ target: z.string(), ok: z.boolean(), error: z.string().optional(), attempts: z.number() });
export type DeliveryResult = z.infer<typeof DeliveryResultSchema>;
export const NotifyTestResultSchema = z.object({ results: z.array(DeliveryResultSchema) });

/** What `ralph attach` needs: the daemon's loops service, the loop's terminator on it, and its opencode login. */
export const AttachPointSchema = z.object({
  service: z.string(),
  terminator: z.string(),
  username: z.string(),
  password: z.string(),
  /** The opencode session of the iteration running now, which attach opens (null before the first). */
  session: z.string().nullable(),
});
export type AttachPoint = z.infer<typeof AttachPointSchema>;

export const LoopParamsSchema = z.object({ id: z.string().min(1) });

/** A stream position: decimal digits (checked against the newest event by the daemon). */
export const EventsQuerySchema = z.object({ loop: z.string().optional(), after: z.string().optional() });
