import { z } from "zod";
import { SandboxInfoSchema } from "../sandbox/info.js";
import { BudgetSchema, UsageSchema } from "./usage-schema.js";

export const LoopStatusSchema = z.enum(["completed", "exhausted", "failed", "stopped", "budget"]);
export type LoopStatus = z.infer<typeof LoopStatusSchema>;

export const IterationOutcomeSchema = z.enum(["progress", "no-progress", "failed", "timeout", "stalled", "budget"]);
export type IterationOutcome = z.infer<typeof IterationOutcomeSchema>;

const base = { time: z.string() };

/** What a loop reports as it runs: printed by --json, streamed by the daemon. */
export const LoopEventSchema = z.discriminatedUnion("type", [
  z.object({
    ...base,
    type: z.literal("run.started"),
    /** A local run's id, for 'ralph say' (the daemon's loops have their own). */
    runId: z.string().optional(),
    taskDir: z.string(),
    branch: z.string(),
    total: z.number(),
    passed: z.number(),
    maxIterations: z.number(),
    budget: BudgetSchema,
  }),
  // Never carries the server's password.
  z.object({ ...base, type: z.literal("opencode.started"), socket: z.string(), pid: z.number(), sandbox: SandboxInfoSchema }),
  z.object({ ...base, type: z.literal("opencode.restarted"), reason: z.string() }),
  z.object({ ...base, type: z.literal("iteration.started"), iteration: z.number(), storyId: z.string().optional(), storyTitle: z.string().optional(), sessionId: z.string().optional() }),
  /** The iteration's opencode session exists: what `ralph attach` shows. */
  z.object({ ...base, type: z.literal("iteration.session"), iteration: z.number(), sessionId: z.string() }),
  z.object({ ...base, type: z.literal("tool"), iteration: z.number(), tool: z.string(), status: z.string(), title: z.string().optional() }),
  z.object({
    ...base,
    type: z.literal("iteration.ended"),
    iteration: z.number(),
    outcome: IterationOutcomeSchema,
    durationMs: z.number(),
    storyId: z.string().optional(),
    passed: z.number(),
    total: z.number(),
    committed: z.boolean(),
    error: z.string().optional(),
    /** This iteration's tokens and cost, and the loop's so far. */
    usage: UsageSchema,
    totalUsage: UsageSchema,
  }),
  /** opencode asked a question or a permission that nobody will answer: the loop answered it at once. */
  z.object({ ...base, type: z.literal("loop.asked"), iteration: z.number(), kind: z.enum(["question", "permission"]), text: z.string(), answer: z.string() }),
  /** No event from opencode for the stall timeout: the iteration was aborted. */
  z.object({ ...base, type: z.literal("loop.stalled"), iteration: z.number(), idleSeconds: z.number() }),
  /** The owner's guidance ('ralph say'), delivered in this iteration's prompt. */
  z.object({ ...base, type: z.literal("loop.guidance"), iteration: z.number(), text: z.string() }),
  /** The sandbox refused connections to a host off its allowlist (counted since the last such event for that host). */
  z.object({ ...base, type: z.literal("sandbox.refused"), host: z.string(), port: z.number(), count: z.number() }),
  /** The iteration ran into one of the sandbox's limits, and failed. */
  z.object({ ...base, type: z.literal("loop.limit"), iteration: z.number(), limit: z.enum(["memory", "pids"]), max: z.number() }),
  z.object({ ...base, type: z.literal("loop.budget"), limit: z.enum(["cost", "tokens"]), max: z.number(), used: z.number().nullable(), duringIteration: z.boolean() }),
  z.object({
    ...base,
    type: z.literal("run.ended"),
    status: LoopStatusSchema,
    iterations: z.number(),
    passed: z.number(),
    total: z.number(),
    durationMs: z.number(),
    reason: z.string().optional(),
    usage: UsageSchema,
  }),
]);

export type LoopEvent = z.infer<typeof LoopEventSchema>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
export type LoopEventInput = DistributiveOmit<LoopEvent, "time">;

export const stamp = (e: LoopEventInput): LoopEvent => ({ ...e, time: new Date().toISOString() }) as LoopEvent;
