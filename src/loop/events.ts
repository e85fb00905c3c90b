import { z } from "zod";

export const LoopStatusSchema = z.enum(["completed", "exhausted", "failed", "stopped"]);
export type LoopStatus = z.infer<typeof LoopStatusSchema>;

export const IterationOutcomeSchema = z.enum(["progress", "no-progress", "failed", "timeout"]);
export type IterationOutcome = z.infer<typeof IterationOutcomeSchema>;

const base = { time: z.string() };

/** What a loop reports as it runs: printed by --json, streamed by the daemon. */
export const LoopEventSchema = z.discriminatedUnion("type", [
  z.object({ ...base, type: z.literal("run.started"), taskDir: z.string(), branch: z.string(), total: z.number(), passed: z.number(), maxIterations: z.number() }),
  // Never carries the server's password.
  z.object({ ...base, type: z.literal("opencode.started"), url: z.string(), port: z.number(), pid: z.number() }),
  z.object({ ...base, type: z.literal("opencode.restarted"), reason: z.string() }),
  z.object({ ...base, type: z.literal("iteration.started"), iteration: z.number(), storyId: z.string().optional(), storyTitle: z.string().optional(), sessionId: z.string().optional() }),
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
  }),
  z.object({ ...base, type: z.literal("run.ended"), status: LoopStatusSchema, iterations: z.number(), passed: z.number(), total: z.number(), durationMs: z.number(), reason: z.string().optional() }),
]);

export type LoopEvent = z.infer<typeof LoopEventSchema>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
export type LoopEventInput = DistributiveOmit<LoopEvent, "time">;

export const stamp = (e: LoopEventInput): LoopEvent => ({ ...e, time: new Date().toISOString() }) as LoopEvent;
