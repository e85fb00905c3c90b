import { join } from "node:path";
import type { Prd } from "../prd/prd.js";
import { readContained } from "./contained.js";

/** The line that names the PRD file; the scripted model finds it there too. */
export const PRD_MARKER = "PRD file:";

/** The loop's own instructions to the agent; TASK_DIR/prompt.md replaces them. */
export const DEFAULT_TEMPLATE = `You are one iteration of a Ralph loop: an autonomous agent working through a product requirements document one story at a time. Each iteration starts with a fresh memory, so everything you need is in the files below.

${PRD_MARKER} {PRD_FILE}
Progress log: {PROGRESS_FILE}
Task directory: {TASK_DIR}
Branch: {BRANCH_NAME}

Do this, in order:
1. Read the PRD and the progress log (its learnings come from earlier iterations).
2. Take the single highest-priority story (lowest "priority" number) whose "passes" is false and whose "blockedBy" stories all pass. Work on that story only.
3. Implement it in the repository, on branch {BRANCH_NAME}.
4. Run the project's checks (tests, type checks, linters) and fix what fails.
5. Commit all of it with the message "feat: [ID] - Title" for that story.
6. In the PRD, set "passes": true on each acceptance criterion you met and on the story when all are met. Change nothing else in the PRD.
7. Append to the progress log what you did and what you learned that the next iteration should know.

No human is watching this loop: never ask a question or wait for an answer. Where something is unclear, make the most reasonable choice, write it down in the progress log, and carry on.

If every story already passes, say so and stop.`;

export interface PromptInput {
  taskDir: string;
  prdFile: string;
  progressFile: string;
  repoDir: string;
  prd: Prd;
  /** The owner's notes sent while the loop ran ('ralph say'), each included once. */
  guidance?: string[];
}

/** `root`: the repository, which prompt.md must not lead out of. */
export function loadTemplate(taskDir: string, root = taskDir): string {
  return readContained(root, join(taskDir, "prompt.md"))?.toString("utf8") ?? DEFAULT_TEMPLATE;
}

export function buildPrompt(template: string, input: PromptInput): string {
  const vars: Record<string, string> = {
    TASK_DIR: input.taskDir,
    PRD_FILE: input.prdFile,
    PROGRESS_FILE: input.progressFile,
    BRANCH_NAME: input.prd.branchName,
  };
  const parts = [template.replace(/\{(TASK_DIR|PRD_FILE|PROGRESS_FILE|BRANCH_NAME)\}/g, (_, k: string) => vars[k]!)];
  if (input.prd.notes?.trim()) parts.push(`## Notes from the user\n${input.prd.notes.trim()}`);
  if (input.guidance?.length) {
    parts.push(`## Guidance from the loop's owner, sent while the loop ran (it takes precedence over the notes above)\n${input.guidance.map((g) => g.trim()).join("\n\n---\n\n")}`);
  }
  const agents = readContained(input.repoDir, "AGENTS.md");
  if (agents) parts.push(`## AGENTS.md\n${agents.toString("utf8").trim()}`);
  return parts.join("\n\n");
}
