import { writeFileSync, renameSync } from "node:fs";
import { isUtf8 } from "node:buffer";
import { randomBytes } from "node:crypto";
import { dirname } from "node:path";
import { z } from "zod";
import { readContained } from "../loop/contained.js";
import { InvalidInputError } from "../util/errors.js";

/** Refused before it is read: no PRD comes near this. */
export const MAX_PRD_BYTES = 1024 * 1024;

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
    const cycle = blockedByCycle(prd.userStories);
    if (cycle) {
      const ids = cycle.ids.length > 12 ? [...cycle.ids.slice(0, 5), `... (${cycle.ids.length - 1} stories) ...`, ...cycle.ids.slice(-3)] : cycle.ids;
      ctx.addIssue({ code: "custom", path: ["userStories", cycle.index, "blockedBy"], message: `${ids.join(" -> ")} is a cycle: no story in it could ever be taken` });
    }
  });

/** The first blockedBy cycle in file order, if any, from the story where it starts. */
function blockedByCycle(stories: readonly { id: string; blockedBy?: string[] }[]): { index: number; ids: string[] } | undefined {
  const index = new Map(stories.map((s, i) => [s.id, i]));
  const state = new Map<string, "visiting" | "done">();
  // Depth first without recursion: a chain of thousands of stories must not overflow the stack.
  for (const start of stories) {
    if (state.has(start.id)) continue;
    const path = [{ id: start.id, next: 0 }];
    state.set(start.id, "visiting");
    while (path.length) {
      const top = path.at(-1)!;
      const blockers = stories[index.get(top.id)!]!.blockedBy ?? [];
      if (top.next === blockers.length) {
        state.set(top.id, "done");
        path.pop();
        continue;
      }
      const b = blockers[top.next++]!;
      if (!index.has(b) || state.get(b) === "done") continue;
      if (state.get(b) === "visiting") return { index: index.get(b)!, ids: [...path.slice(path.findIndex((f) => f.id === b)).map((f) => f.id), b] };
      state.set(b, "visiting");
      path.push({ id: b, next: 0 });
    }
  }
  return undefined;
}

export type Prd = z.infer<typeof PrdSchema>;
export type Story = z.infer<typeof StorySchema>;

export class PrdError extends InvalidInputError {
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

/**
 * Where JSON.parse failed and why, found by a scan of our own: V8's messages
 * quote the text, and a PRD may be a file the user never meant to show.
 */
function syntaxError(text: string): string {
  let i = 0;
  const fail = (problem: string): never => {
    const before = text.slice(0, i).split("\n");
    throw new Error(`${problem} at line ${before.length}, column ${before.at(-1)!.length + 1}`);
  };
  const ws = () => {
    while (" \t\n\r".includes(text[i] ?? "x")) i++;
  };
  const string = () => {
    for (i++; ; i++) {
      const c = text[i];
      if (c === undefined) fail("unterminated string");
      else if (c === '"') return void i++;
      else if (c < " ") fail("control character inside a string");
      else if (c === "\\") {
        i++;
        if (text[i] === "u" ? !/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5)) : !'"\\/bfnrt'.includes(text[i] ?? "x")) fail("invalid escape in a string");
        if (text[i] === "u") i += 4;
      }
    }
  };
  const value = (depth: number): void => {
    if (depth > 1000) fail("nested over 1000 levels deep");
    ws();
    const c = text[i];
    if (c === "{" || c === "[") {
      const close = c === "{" ? "}" : "]";
      i++;
      ws();
      if (text[i] === close) return void i++;
      for (;;) {
        if (c === "{") {
          ws();
          if (text[i] !== '"') fail("expected a property name in double quotes");
          string();
          ws();
          if (text[i] !== ":") fail("expected ':' after a property name");
          i++;
        }
        value(depth + 1);
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === close) return void i++;
        else fail(text[i] === undefined ? "unexpected end of the file" : `expected ',' or '${close}'`);
      }
    }
    if (c === '"') return string();
    const literal = /-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?|true|false|null/y;
    literal.lastIndex = i;
    if (literal.exec(text)) return void (i = literal.lastIndex);
    fail(c === undefined ? "unexpected end of the file" : "unexpected character");
  };
  try {
    value(0);
    ws();
    if (i < text.length) fail("unexpected text after the JSON value");
  } catch (err) {
    return (err as Error).message;
  }
  return "a syntax error";
}

/**
 * Invalid UTF-8 in a PRD is refused rather than silently replaced: the byte
 * offset of the first bad sequence and, when it lies in a string, its JSON path.
 */
function utf8Error(bytes: Uint8Array, file: string): PrdError {
  let at = 0;
  for (let step; at < bytes.length; at += step) {
    const c = bytes[at]!;
    // Lead byte: how many continuation bytes follow, and the range of the first (no overlongs, surrogates or > U+10FFFF).
    const [n, lo, hi] = c < 0x80 ? [0, 0, 0] : c >= 0xc2 && c <= 0xdf ? [1, 0x80, 0xbf] : c === 0xe0 ? [2, 0xa0, 0xbf] : c === 0xed ? [2, 0x80, 0x9f] : c >= 0xe1 && c <= 0xef ? [2, 0x80, 0xbf] : c === 0xf0 ? [3, 0x90, 0xbf] : c >= 0xf1 && c <= 0xf3 ? [3, 0x80, 0xbf] : c === 0xf4 ? [3, 0x80, 0x8f] : [-1, 0, 0];
    const ok = n >= 0 && Array.from({ length: n }, (_, k) => bytes[at + 1 + k]).every((d, k) => d !== undefined && d >= (k === 0 ? lo : 0x80) && d <= (k === 0 ? hi : 0xbf));
    if (!ok) break;
    step = n + 1;
  }
  // A unique marker in place of the bad byte shows which string holds it.
  const marker = `ralph-invalid-utf8-${randomBytes(8).toString("hex")}`;
  const text = Buffer.from(bytes.subarray(0, at)).toString("utf8") + marker + Buffer.from(bytes.subarray(at + 1)).toString("utf8");
  let path = "$";
  try {
    path = jsonPathOf(pathOfMarker(JSON.parse(text), marker) ?? []);
  } catch {
    // Not a string's byte, or the rest is broken too: the offset says where.
  }
  return new PrdError(file, path, `invalid UTF-8 at byte ${at}: save the file as UTF-8`);
}

function pathOfMarker(value: unknown, marker: string): PropertyKey[] | undefined {
  if (typeof value === "string") return value.includes(marker) ? [] : undefined;
  if (typeof value !== "object" || value === null) return undefined;
  for (const [k, v] of Object.entries(value)) {
    const key = Array.isArray(value) ? Number(k) : k;
    if (k.includes(marker)) return [key];
    const below = pathOfMarker(v, marker);
    if (below) return [key, ...below];
  }
  return undefined;
}

/** `source` as read from disk (bytes) or already decoded. */
export function parsePrd(source: string | Uint8Array, file: string): Prd {
  if (typeof source !== "string" && !isUtf8(source)) throw utf8Error(source, file);
  const text = typeof source === "string" ? source : Buffer.from(source).toString("utf8");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new PrdError(file, "$", `not valid JSON: ${syntaxError(text)}`);
  }
  const parsed = PrdSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new PrdError(file, jsonPathOf(issue.path), issue.message);
  }
  return parsed.data;
}

/**
 * Reads and validates `file`, which must stay inside `root` (the repository):
 * a symlink leading out is a ContainmentError, and nothing of it is read.
 */
export function loadPrd(file: string, root = dirname(file)): Prd {
  let bytes: Buffer | undefined;
  try {
    bytes = readContained(root, file, MAX_PRD_BYTES);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!code) throw err;
    throw new PrdError(file, "$", `cannot read the file (${code})`);
  }
  if (!bytes) throw new PrdError(file, "$", "cannot read the file (ENOENT)");
  return parsePrd(bytes, file);
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
