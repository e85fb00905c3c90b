import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ContainmentError } from "../../src/loop/contained.js";
import { MAX_PRD_BYTES, PrdError, loadPrd, nextStory, parsePrd, storyCounts, writePrd } from "../../src/prd/prd.js";

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
});

test("blockedBy cycles are refused at the story where they start, direct, indirect or on itself", () => {
  const refusedAt = (stories: object[], jsonPath: string, cycle: string) =>
    assert.throws(() => parsePrd(prdWith(stories), "p"), (e: unknown) => e instanceof PrdError && e.jsonPath === jsonPath && e.problem.startsWith(`${cycle} is a cycle`), cycle);
  refusedAt([story("S1", { blockedBy: ["S2"] }), story("S2", { blockedBy: ["S1"] })], "$.userStories[0].blockedBy", "S1 -> S2 -> S1");
  refusedAt([story("S0"), story("S1", { blockedBy: ["S0", "S3"] }), story("S2", { blockedBy: ["S1"] }), story("S3", { blockedBy: ["S2"] })], "$.userStories[1].blockedBy", "S1 -> S3 -> S2 -> S1");
  refusedAt([story("S1"), story("S2", { blockedBy: ["S2"] })], "$.userStories[1].blockedBy", "S2 -> S2");
  // A long chain is checked without recursion and named in a few ids.
  const chain = Array.from({ length: 20_000 }, (_, i) => story(`C${i}`, { blockedBy: [`C${(i + 1) % 20_000}`] }));
  assert.throws(() => parsePrd(prdWith(chain), "p"), (e: unknown) => e instanceof PrdError && e.problem.startsWith("C0 -> C1 -> C2 -> C3 -> C4 -> ... (20000 stories) ... -> C19998 -> C19999 -> C0 is a cycle"));
  // A diamond is not a cycle.
  const ok = parsePrd(prdWith([story("A"), story("B", { blockedBy: ["A"] }), story("C", { blockedBy: ["A"] }), story("D", { blockedBy: ["B", "C"] })]), "p");
  assert.equal(nextStory(ok)?.id, "A");
});

test("invalid UTF-8 is refused with its byte offset and the JSON path of the string that holds it", () => {
  const good = Buffer.from(prdWith([story("A"), story("B")]));
  const at = good.indexOf("Story B") + 6;
  const bad = Buffer.concat([good.subarray(0, at), Buffer.from([0xff]), good.subarray(at)]);
  assert.throws(() => parsePrd(bad, "p"), (e: unknown) => e instanceof PrdError && e.jsonPath === "$.userStories[1].title" && e.problem.includes(`invalid UTF-8 at byte ${at}`));
  // A truncated sequence, and an overlong encoding of '/'.
  for (const seq of [[0xe2, 0x82], [0xc0, 0xaf]]) {
    const text = Buffer.concat([Buffer.from('{"branchName":"b","notes":"x'), Buffer.from(seq), Buffer.from('y","userStories":[{"id":"A","title":"A"}]}')]);
    assert.throws(() => parsePrd(text, "p"), (e: unknown) => e instanceof PrdError && e.jsonPath === "$.notes" && e.problem.includes("invalid UTF-8 at byte 28"));
  }
  // Outside any string: the offset alone.
  assert.throws(() => parsePrd(Buffer.from([0x7b, 0xfe, 0x7d]), "p"), (e: unknown) => e instanceof PrdError && e.jsonPath === "$" && e.problem.includes("invalid UTF-8 at byte 1"));
  // Valid multi-byte text, U+FFFD included, is kept as it is.
  const prd = parsePrd(Buffer.from(prdWith([story("A", { title: "Grüße \ufffd 🚀" })])), "p");
  assert.equal(prd.userStories[0]!.title, "Grüße \ufffd 🚀");
});

test("malformed JSON names the line, column and problem but never quotes the text", () => {
  const secret = "root:x:0:0:PRD-TEST-SECRET-91c2";
  const cases: [string, RegExp][] = [
    [secret, /unexpected character at line 1, column 1/],
    [`{\n  "branchName": ${secret}\n}`, /unexpected character at line 2, column 17/],
    [`{"branchName": "${secret}`, /unterminated string at line 1, column \d+/],
    [`{"branchName": "b", "notes": "${secret}"} ${secret}`, /unexpected text after the JSON value at line 1, column \d+/],
    [`{"branchName": "${secret}\\q"}`, /invalid escape in a string/],
    [`{'${secret}': 1}`, /expected a property name in double quotes at line 1, column 2/],
    [`["${secret}" "x"]`, /expected ',' or '\]' at line 1/],
    [`{"branchName": "${secret}"`, /unexpected end of the file/],
  ];
  for (const [text, problem] of cases) {
    assert.throws(
      () => parsePrd(text, "/t/prd.json"),
      (e: unknown) => e instanceof PrdError && e.jsonPath === "$" && problem.test(e.message) && !e.message.includes("PRD-TEST-SECRET") && !e.message.includes("root:x"),
      text,
    );
  }
});

test("a prd.json over 1 MiB is refused by its size before it is parsed", () => {
  const dir = mkdtempSync(join(tmpdir(), "prd-"));
  try {
    const file = join(dir, "prd.json");
    writeFileSync(file, prdWith([story("A", { description: "x".repeat(MAX_PRD_BYTES) })]));
    assert.throws(() => loadPrd(file), (e: unknown) => e instanceof ContainmentError && /prd\.json is 1\.0 MiB, over the limit of 1\.0 MiB/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a prd.json that leads out of its repository is refused, and nothing of it is read", () => {
  const dir = mkdtempSync(join(tmpdir(), "prd-"));
  try {
    const repo = join(dir, "repo");
    mkdirSync(join(repo, "task"), { recursive: true });
    writeFileSync(join(dir, "passwd"), "root:x:0:0:PRD-TEST-SECRET-91c2\n");
    symlinkSync(join(dir, "passwd"), join(repo, "task", "prd.json"));
    const atime = statSync(join(dir, "passwd")).atimeMs;
    assert.throws(
      () => loadPrd(join(repo, "task", "prd.json"), repo),
      (e: unknown) => e instanceof ContainmentError && e.message.startsWith("task/prd.json leads outside the repository") && !e.message.includes("SECRET"),
    );
    assert.equal(statSync(join(dir, "passwd")).atimeMs, atime);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
