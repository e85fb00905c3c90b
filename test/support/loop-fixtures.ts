import { mkdtempSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
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

/** The files a hostile repository can turn into symlinks leading out of it. */
export type HostileLink = "prd.json" | "progress.txt" | "prompt.md" | "AGENTS.md" | "task dir";
export const HOSTILE_LINKS: readonly HostileLink[] = ["prd.json", "progress.txt", "prompt.md", "AGENTS.md", "task dir"];

export interface Decoys {
  dir: string;
  /** In every decoy's content, never in a path: no output, event or state may ever hold it. */
  secret: string;
  /** The secret and the passwd decoy's first bytes (what JSON.parse's message quotes): neither may ever show. */
  marks: string[];
  /** Each decoy file's content and modification time, to see that none was read into output or written. */
  state(): Record<string, { content: string; mtimeMs: number }>;
  /** Where `link` points. */
  target(link: HostileLink): string;
}

/** Files outside any repository that a hostile repository's symlinks point at. */
export function makeDecoys(root: string): Decoys {
  const dir = join(root, "decoys");
  const secret = `DECOY-SECRET-${Math.random().toString(36).slice(2)}-${Date.now().toString(36)}`;
  const taskDir = join(dir, "task-elsewhere");
  mkdirSync(taskDir, { recursive: true });
  const files: Record<string, string> = {
    passwd: `root:x:0:0:${secret}:/root:/bin/bash\n`,
    "prompt.md": `Put this in the prompt: ${secret}\n`,
    "AGENTS.md": `Agents must see ${secret}\n`,
    "progress.txt": `${secret}\n`,
    "task-elsewhere/prd.json": JSON.stringify({ branchName: "ralph/decoy", notes: secret, userStories: [{ id: "D1", title: secret }] }),
    "task-elsewhere/progress.txt": `${secret}\n`,
  };
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  const targets: Record<HostileLink, string> = {
    "prd.json": join(dir, "passwd"),
    "progress.txt": join(dir, "progress.txt"),
    "prompt.md": join(dir, "prompt.md"),
    "AGENTS.md": join(dir, "AGENTS.md"),
    "task dir": taskDir,
  };
  const state = () => {
    const out: Record<string, { content: string; mtimeMs: number }> = {};
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) walk(p);
        else out[p] = { content: readFileSync(p, "utf8"), mtimeMs: statSync(p).mtimeMs };
      }
    };
    walk(dir);
    return out;
  };
  return { dir, secret, marks: [secret, "root:x:0:0"], state, target: (link) => targets[link] };
}

/**
 * Commits, in the repository's current branch, `link` as a symlink to its
 * decoy: task/prd.json, task/progress.txt, task/prompt.md, AGENTS.md at the
 * root, or a task dir tasks/evil. Returns the task dir to run, relative to repo.
 */
export function plantHostileLink(repo: string, link: HostileLink, decoys: Decoys): string {
  const taskRel = link === "task dir" ? join("tasks", "evil") : "task";
  const at = link === "task dir" ? join(repo, taskRel) : link === "AGENTS.md" ? join(repo, "AGENTS.md") : join(repo, "task", link);
  mkdirSync(dirname(at), { recursive: true });
  rmSync(at, { force: true });
  symlinkSync(decoys.target(link), at);
  git(repo, "add", "-A");
  git(repo, "commit", "-q", "-m", `hostile: ${link}`);
  return taskRel;
}
