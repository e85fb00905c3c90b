import { z } from "zod";
import { UsageSchema } from "../loop/usage.js";

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
  maxIterations: z.number().int().min(1).max(1000).default(10),
  model: z.string().regex(/^[A-Za-z0-9._-]+\/[A-Za-z0-9._:/-]+$/, "model must be written provider/model").optional(),
  iterationTimeoutSeconds: z.number().int().min(10).max(24 * 3600).default(1800),
  /** Omitted: the daemon's default (stallTimeoutSeconds in its config). */
  stallTimeoutSeconds: z.number().int().min(5).max(24 * 3600).optional(),
  /** Omitted: the daemon's default budget; never above its ceiling. */
  maxCostUsd: z.number().positive().max(1_000_000).optional(),
  maxTokens: z.number().int().positive().max(1e12).optional(),
});
export type StartLoopRequest = z.infer<typeof StartLoopRequestSchema>;

/** The owner's guidance for a running loop's next iteration ('ralph say'). */
export const SayRequestSchema = z.strictObject({ text: z.string().trim().min(1, "text must not be empty").max(16 * 1024, "text is over 16 KiB") });
export const SayResponseSchema = z.object({ loopId: z.string(), pending: z.number() });

export const LoopSummarySchema = z.object({
  id: z.string(),
  origin: z.string(),
  branch: z.string(),
  taskDir: z.string(),
  status: z.string(),
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
});
export type LoopSummary = z.infer<typeof LoopSummarySchema>;

export type ErrorCode = "invalid_request" | "not_found" | "method_not_allowed" | "conflict" | "busy" | "too_large" | "internal";
export class RpcError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "RpcError";
  }
}
export const httpStatusFor: Record<ErrorCode, 400 | 404 | 405 | 409 | 503 | 413 | 500> = {
  invalid_request: 400,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  busy: 503,
  too_large: 413,
  internal: 500,
};
