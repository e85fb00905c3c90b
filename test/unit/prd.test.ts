import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PrdError, loadPrd, nextStory, parsePrd, storyCounts, writePrd } from "../../src/prd/prd.js";

const story = (id: string, extra: object = {}) => ({ id, title: `Story ${id}`, priority: 1, passes: false, ...extra });
const prdWith = (stories: object[], extra: object = {}) => JSON.stringify({ branchName: "ralph/x", userStories: stories, ...extra });

test("a valid PRD parses with defaults filled in", () => {
  const prd = parsePrd(prdWith([{ id: "A", title: "A" }]), "prd.json");
  assert.equal(prd.userStories[0]!.passes, false);
  assert.equal(prd.userStories[0]!.priority, 100);
  assert.deepEqual(prd.userStories[0]!.acceptanceCriteria, []);
});

test("criteria may be strings or {description, passes} objects", () => {
  const prd = parsePrd(prdWith([story("A", { acceptanceCriteria: ["x", { description: "y", passes: true }] })]), "p");
  assert.deepEqual(prd.userStories[0]!.acceptanceCriteria, ["x", { description: "y", passes: true }]);
});

test("invalid JSON names the file and says it is not JSON", () => {
  assert.throws(() => parsePrd("{nope", "/t/prd.json"), (e: unknown) => e instanceof PrdError && e.file === "/t/prd.json" && /not valid JSON/.test(e.message));
});

test("a missing branchName is reported with its JSON path", () => {
  assert.throws(
    () => parsePrd(JSON.stringify({ userStories: [story("A")] }), "prd.json"),
    (e: unknown) => e instanceof PrdError && e.jsonPath === "$.branchName" && e.message.includes("$.branchName"),
  );
});

test("a story with a wrong type is reported at its index", () => {
  assert.throws(
    () => parsePrd(prdWith([story("A"), story("B", { passes: "yes" })]), "prd.json"),
    (e: unknown) => e instanceof PrdError && e.jsonPath === "$.userStories[1].passes",
  );
});

test("duplicate ids and unknown blockers are refused", () => {
  assert.throws(() => parsePrd(prdWith([story("A"), story("A")]), "p"), /duplicate story id "A"/);
  assert.throws(() => parsePrd(prdWith([story("A", { blockedBy: ["Z"] })]), "p"), (e: unknown) => e instanceof PrdError && e.jsonPath === "$.userStories[0].blockedBy[0]");
});

test("an empty story list is refused", () => {
  assert.throws(() => parsePrd(prdWith([]), "p"), (e: unknown) => e instanceof PrdError && e.jsonPath === "$.userStories");
});

test("a missing file is a PrdError, not a crash", () => {
  assert.throws(() => loadPrd("/nonexistent/prd.json"), (e: unknown) => e instanceof PrdError && /ENOENT/.test(e.message));
});

test("unknown fields survive a rewrite at every level", () => {
  const dir = mkdtempSync(join(tmpdir(), "prd-"));
  const file = join(dir, "prd.json");
  writeFileSync(file, prdWith([story("A", { owner: "me", acceptanceCriteria: [{ description: "d", passes: false, weight: 3 }] })], { custom: { x: 1 } }));
  const prd = loadPrd(file);
  prd.userStories[0]!.passes = true;
  writePrd(file, prd);
  const back = JSON.parse(readFileSync(file, "utf8"));
  assert.deepEqual(back.custom, { x: 1 });
  assert.equal(back.userStories[0].owner, "me");
  assert.equal(back.userStories[0].acceptanceCriteria[0].weight, 3);
  assert.equal(back.userStories[0].passes, true);
  rmSync(dir, { recursive: true, force: true });
});

test("nextStory takes the lowest priority number among unblocked failing stories", () => {
  const prd = parsePrd(
    prdWith([story("A", { priority: 3 }), story("B", { priority: 1, blockedBy: ["C"] }), story("C", { priority: 2 }), story("D", { priority: 0, passes: true })]),
    "p",
  );
  assert.equal(nextStory(prd)?.id, "C");
  prd.userStories[2]!.passes = true;
  assert.equal(nextStory(prd)?.id, "B");
  assert.deepEqual(storyCounts(prd), { passed: 2, total: 4 });
});

test("nextStory keeps file order on equal priority and is undefined when all pass or all are blocked", () => {
  assert.equal(nextStory(parsePrd(prdWith([story("A"), story("B")]), "p"))?.id, "A");
  assert.equal(nextStory(parsePrd(prdWith([story("A", { passes: true })]), "p")), undefined);
  assert.equal(nextStory(parsePrd(prdWith([story("A", { blockedBy: ["B"] }), story("B", { blockedBy: ["A"] })]), "p")), undefined);
});
