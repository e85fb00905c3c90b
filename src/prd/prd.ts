import { readFileSync, writeFileSync, renameSync } from "node:fs";
import { z } from "zod";

const Criterion = z.union([
  z.string().min(1),
  z.looseObject({ description: z.string().min(1), passes: z.boolean().default(false) }),
]);

export const StorySchema = z.looseObject({
  id: z.string().min(1),
  title: z.string().min(1),
  description: z.string().default(""),
  acceptanceCriteria: z.array(Criterion).default([]),
  priority: z.number().int().default(100),
  passes: z.boolean().default(false),
  notes: z.string().optional(),
  blockedBy: z.array(z.string()).optional(),
});

// looseObject keeps unknown fields, so a rewrite never drops what a user added.
export const PrdSchema = z
  .looseObject({
    project: z.string().optional(),
    branchName: z.string().min(1),
    description: z.string().optional(),
    notes: z.string().optional(),
    userStories: z.array(StorySchema).min(1),
  })
  .superRefine((prd, ctx) => {
    const ids = new Set<string>();
    prd.userStories.forEach((s, i) => {
      if (ids.has(s.id)) ctx.addIssue({ code: "custom", path: ["userStories", i, "id"], message: `duplicate story id "${s.id}"` });
      ids.add(s.id);
    });
    prd.userStories.forEach((s, i) =>
      s.blockedBy?.forEach((b, j) => {
        if (!ids.has(b)) ctx.addIssue({ code: "custom", path: ["userStories", i, "blockedBy", j], message: `unknown story id "${b}"` });
      }),
    );
  });

export type Prd = z.infer<typeof PrdSchema>;
export type Story = z.infer<typeof StorySchema>;

export class PrdError extends Error {
  constructor(
    readonly file: string,
    readonly jsonPath: string,
    readonly problem: string,
  ) {
    super(`invalid PRD ${file}: at ${jsonPath}: ${problem}; fix the file and run again`);
    this.name = "PrdError";
  }
}

function jsonPathOf(path: readonly PropertyKey[]): string {
  return "$" + path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("");
}

export function parsePrd(text: string, file: string): Prd {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new PrdError(file, "$", `not valid JSON (${(err as Error).message})`);
  }
  const parsed = PrdSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new PrdError(file, jsonPathOf(issue.path), issue.message);
  }
  return parsed.data;
}

export function loadPrd(file: string): Prd {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new PrdError(file, "$", `cannot read the file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return parsePrd(text, file);
}

/** Atomic rewrite; unknown fields survive because the schema keeps them. */
export function writePrd(file: string, prd: Prd): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(prd, null, 2) + "\n");
  renameSync(tmp, file);
}

export function storyCounts(prd: Prd): { passed: number; total: number } {
  return { passed: prd.userStories.filter((s) => s.passes).length, total: prd.userStories.length };
}

export const allPass = (prd: Prd): boolean => prd.userStories.every((s) => s.passes);

/**
 * The story the agent should take next: the highest-priority (lowest number)
 * story that does not pass and whose blockers all pass. Ties keep file order.
 */
export function nextStory(prd: Prd): Story | undefined {
  const passed = new Set(prd.userStories.filter((s) => s.passes).map((s) => s.id));
  return prd.userStories
    .filter((s) => !s.passes && (s.blockedBy ?? []).every((b) => passed.has(b)))
    .sort((a, b) => a.priority - b.priority)[0];
}
