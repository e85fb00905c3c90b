import { appendContained } from "./contained.js";
import type { IterationOutcome } from "./events.js";

/** The loop's own record of an iteration, distinct from the agent's notes; `file` must stay inside `root`. */
export function appendProgressRecord(
  root: string,
  file: string,
  r: { iteration: number; storyId?: string; outcome: IterationOutcome; durationMs: number; passed: number; total: number; error?: string },
): void {
  const line = [
    `[ralph] ${new Date().toISOString()}`,
    `iteration ${r.iteration}`,
    `story ${r.storyId ?? "-"}`,
    `outcome ${r.outcome}`,
    `${(r.durationMs / 1000).toFixed(1)}s`,
    `stories ${r.passed}/${r.total}`,
    ...(r.error ? [`error: ${r.error}`] : []),
  ].join(" | ");
  appendContained(root, file, line + "\n");
}
