/**
 * What a loop's settings may be, inclusive: the one table the daemon's
 * request schema and the CLI's option checks both read, so that a value the
 * client lets through the daemon accepts. No zod here: the CLI's command
 * definitions load it, and they must stay light.
 */
export const BOUNDS = {
  maxIterations: { min: 1, max: 1000 },
  iterationTimeoutSeconds: { min: 10, max: 24 * 3600 },
  stallTimeoutSeconds: { min: 5, max: 24 * 3600 },
  maxTokens: { min: 1, max: 1e12 },
  /** Dollars; more than 0. */
  maxCostUsd: { min: 0, max: 1_000_000 },
} as const;
