import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildPrompt, loadTemplate, DEFAULT_TEMPLATE, PRD_MARKER } from "../../src/loop/prompt.js";
import { parsePrd } from "../../src/prd/prd.js";
import { exitCodeForStatus } from "../../src/cli/describe.js";
import { ExitCode } from "../../src/cli/exit-codes.js";

const prd = (notes?: string) => parsePrd(JSON.stringify({ branchName: "ralph/b", notes, userStories: [{ id: "A", title: "A" }] }), "p");

const made: string[] = [];
after(() => made.forEach((d) => rmSync(d, { recursive: true, force: true })));

function dirs() {
  const repoDir = mkdtempSync(join(tmpdir(), "prompt-"));
  made.push(repoDir);
  const taskDir = join(repoDir, "task");
  return { repoDir, taskDir, prdFile: join(taskDir, "prd.json"), progressFile: join(taskDir, "progress.txt") };
}

test("the default template fills every variable and names the PRD for the agent", () => {
  const d = dirs();
  const text = buildPrompt(DEFAULT_TEMPLATE, { ...d, prd: prd() });
  assert.ok(text.includes(`${PRD_MARKER} ${d.prdFile}`));
  assert.ok(text.includes(d.progressFile));
  assert.ok(text.includes("ralph/b"));
  assert.ok(text.includes("feat: [ID] - Title"));
  assert.doesNotMatch(text, /\{(TASK_DIR|PRD_FILE|PROGRESS_FILE|BRANCH_NAME)\}/);
});

test("the PRD's notes and the repo's AGENTS.md are included", () => {
  const d = dirs();
  writeFileSync(join(d.repoDir, "AGENTS.md"), "Run npm test before committing.\n");
  const text = buildPrompt(DEFAULT_TEMPLATE, { ...d, prd: prd("Prefer small commits.") });
  assert.ok(text.includes("Prefer small commits."));
  assert.ok(text.includes("Run npm test before committing."));
});

test("TASK_DIR/prompt.md overrides the template and gets the same variables", () => {
  const d = dirs();
  mkdirSync(d.taskDir, { recursive: true });
  writeFileSync(join(d.taskDir, "prompt.md"), "Custom for {BRANCH_NAME} in {TASK_DIR}");
  const template = loadTemplate(d.taskDir);
  assert.equal(buildPrompt(template, { ...d, prd: prd() }), `Custom for ralph/b in ${d.taskDir}`);
  assert.equal(loadTemplate(join(d.repoDir, "elsewhere")), DEFAULT_TEMPLATE);
});

test("the owner's guidance is included once, after the PRD's notes, and a custom template gets it too", () => {
  const d = dirs();
  const text = buildPrompt(DEFAULT_TEMPLATE, { ...d, prd: prd("Prefer small commits."), guidance: ["Use tabs, not spaces.", "Skip story B for now.\n"] });
  assert.equal(text.split("Use tabs, not spaces.").length, 2);
  assert.ok(text.indexOf("Prefer small commits.") < text.indexOf("Guidance from the loop's owner"));
  assert.ok(text.includes("Use tabs, not spaces.\n\n---\n\nSkip story B for now."));
  assert.equal(buildPrompt("T", { ...d, prd: prd(), guidance: ["G"] }), "T\n\n## Guidance from the loop's owner, sent while the loop ran (it takes precedence over the notes above)\nG");
  assert.ok(!buildPrompt(DEFAULT_TEMPLATE, { ...d, prd: prd(), guidance: [] }).includes("Guidance from"));
});

test("loop statuses map to distinct exit codes", () => {
  assert.equal(exitCodeForStatus("completed"), ExitCode.Ok);
  const codes = (["exhausted", "failed", "stopped", "budget"] as const).map(exitCodeForStatus);
  assert.deepEqual(codes, [ExitCode.Exhausted, ExitCode.Failed, ExitCode.Stopped, ExitCode.Budget]);
  assert.equal(new Set([...codes, ExitCode.Ok, ExitCode.InvalidInput]).size, 6);
});
