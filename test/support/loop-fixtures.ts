import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { scriptedModelConfig } from "../../src/model/opencode-config.js";

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
export function makeRepo(modelBaseUrl: string, prd: unknown = threeStoryPrd()): Fixture {
  const root = mkdtempSync(join(tmpdir(), "ralph-loop-"));
  const repo = join(root, "repo");
  const taskDir = join(repo, "task");
  const home = join(root, "home");
  mkdirSync(taskDir, { recursive: true });
  mkdirSync(home);
  git(repo, "init", "-q", "-b", "main");
  writeFileSync(join(repo, "README.md"), "fixture\n");
  writeFileSync(join(repo, "opencode.json"), JSON.stringify(scriptedModelConfig(modelBaseUrl), null, 2));
  writeFileSync(join(taskDir, "prd.json"), typeof prd === "string" ? prd : JSON.stringify(prd, null, 2));
  git(repo, "add", "-A");
  git(repo, "commit", "-q", "-m", "init");
  return { root, repo, taskDir, home, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}
