import { z } from "zod";
import { LoopEventSchema, LoopStatusSchema } from "../loop/events.js";

/** A loop's state on a daemon: starting and running, then how it ended. */
export const LoopStateSchema = z.enum(["starting", "running", ...LoopStatusSchema.options]);
export type LoopState = z.infer<typeof LoopStateSchema>;
export const ACTIVE_STATES: readonly LoopState[] = ["starting", "running"];

const time = z.string();

/** What the daemon itself reports about a loop, beside the loop engine's events. */
export const DaemonLoopEventSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("loop.status"), time, status: LoopStateSchema, reason: z.string().optional() }),
  z.object({ type: z.literal("loop.pushed"), time, branch: z.string(), commit: z.string() }),
  z.object({ type: z.literal("loop.push-failed"), time, branch: z.string(), error: z.string() }),
]);
export type DaemonLoopEvent = z.infer<typeof DaemonLoopEventSchema>;

/** Any event a daemon records for a loop. */
export const RecordedEventSchema = z.union([LoopEventSchema, DaemonLoopEventSchema]);
export type RecordedEvent = z.infer<typeof RecordedEventSchema>;

/** One event of GET /events: its position in the daemon's log, its loop, and the event. */
export const StreamEventSchema = z.object({ seq: z.number().int().positive(), loopId: z.string() }).and(RecordedEventSchema);
export type StreamEvent = z.infer<typeof StreamEventSchema>;

/** The named SSE events of GET /events besides the loop events (which carry no name). */
export const GapSchema = z.object({ message: z.string() });
export const CaughtUpSchema = z.object({ seq: z.number().int().nonnegative() });

const ENDED: ReadonlySet<string> = new Set(LoopStatusSchema.options);
export const isTerminal = (e: StreamEvent): boolean => e.type === "loop.status" && ENDED.has(e.status);
