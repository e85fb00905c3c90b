import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { scriptedModelConfig, type ModelPrice } from "../../src/model/opencode-config.js";

export const gitEnv = {
  GIT_AUTHOR_NAME: "Test",
  GIT_AUTHOR_EMAIL: "test@localhost",
  GIT_COMMITTER_NAME: "Test",
  GIT_COMMITTER_EMAIL: "test@localhost",
};

export const git = (cwd: string, ...args: string[]): string =>
  execFileSync("git", args, { cwd, env: { ...process.env, ...gitEnv } }).toString().trim();

export function threeStoryPrd(branchName = "ralph/test") {
  return {
    project: "fixture",
    branchName,
    description: "three small stories",
    extra: { keptBy: "the loop" },
    userStories: [
      { id: "S1", title: "First story", description: "one", acceptanceCriteria: ["a file exists"], priority: 1, passes: false },
      { id: "S2", title: "Second story", description: "two", acceptanceCriteria: [{ description: "b", passes: false }], priority: 2, passes: false },
      { id: "S3", title: "Third story", description: "three", acceptanceCriteria: [], priority: 3, passes: false, blockedBy: ["S1"] },
    ],
  };
}

export interface Fixture {
  root: string;
  repo: string;
  taskDir: string;
  home: string;
  cleanup(): void;
}

/**
 * A temp git repo with task/prd.json and an opencode.json that points opencode
 * at the scripted model, plus a private RALPH_HOME.
 */
export function makeRepo(modelBaseUrl: string, prd: unknown = threeStoryPrd(), opencode: { price?: ModelPrice; extra?: Record<string, unknown> } = {}): Fixture {
  const root = mkdtempSync(join(tmpdir(), "ralph-loop-"));
  const repo = join(root, "repo");
  const taskDir = join(repo, "task");
  const home = join(root, "home");
  mkdirSync(taskDir, { recursive: true });
  mkdirSync(home);
  git(repo, "init", "-q", "-b", "main");
  writeFileSync(join(repo, "README.md"), "fixture\n");
  writeFileSync(join(repo, "opencode.json"), JSON.stringify({ ...scriptedModelConfig(modelBaseUrl, opencode.price), ...opencode.extra }, null, 2));
  writeFileSync(join(taskDir, "prd.json"), typeof prd === "string" ? prd : JSON.stringify(prd, null, 2));
  git(repo, "add", "-A");
  git(repo, "commit", "-q", "-m", "init");
  return { root, repo, taskDir, home, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

/** The price the tests give the scripted model (USD per million tokens). */
export const TEST_PRICE: ModelPrice = { input: 2, output: 10, cache_read: 0.5, cache_write: 1 };

/**
 * What opencode reports for one scripted answer (SCRIPTED_USAGE): cached and
 * reasoning tokens are split out of prompt and completion tokens.
 */
export const TOKENS_PER_ANSWER = { input: 700, output: 150, reasoning: 50, cacheRead: 300, cacheWrite: 0 };
/** Reasoning is billed as output. */
export const COST_PER_ANSWER = (700 * TEST_PRICE.input + (150 + 50) * TEST_PRICE.output + 300 * TEST_PRICE.cache_read!) / 1e6;
