import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { execa } from "execa";
import { InvalidInputError } from "../util/errors.js";

async function git(repoDir: string, args: string[]): Promise<string> {
  const r = await execa("git", args, { cwd: repoDir, reject: false });
  if (r.exitCode !== 0) throw new Error(`git ${args.join(" ")} failed in ${repoDir}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout.trim();
}

export const headCommit = (repoDir: string): Promise<string> => git(repoDir, ["rev-parse", "HEAD"]);
export const currentBranch = (repoDir: string): Promise<string> => git(repoDir, ["rev-parse", "--abbrev-ref", "HEAD"]);
export const repoRoot = (dir: string): Promise<string> => git(dir, ["rev-parse", "--show-toplevel"]);

/** Tracked changes only: untracked files (e.g. a fresh progress.txt) survive a branch switch. */
export async function isDirty(repoDir: string): Promise<boolean> {
  return (await git(repoDir, ["status", "--porcelain", "--untracked-files=no"])) !== "";
}

/**
 * Whether `branch` is a plain branch name. git checks it in an empty directory
 * that no repository encloses: inside one it would expand "@{-1}" or
 * "@{upstream}" to another branch and call that valid.
 */
export async function isBranchName(branch: string): Promise<boolean> {
  if (branch.startsWith("-")) return false;
  const neutral = mkdtempSync(join(tmpdir(), "ralph-ref-"));
  try {
    const r = await execa("git", ["check-ref-format", "--branch", branch], {
      cwd: neutral,
      reject: false,
      env: { GIT_DIR: undefined, GIT_WORK_TREE: undefined, GIT_CEILING_DIRECTORIES: dirname(neutral) },
    });
    return r.exitCode === 0 && r.stdout.trim() === branch;
  } finally {
    rmSync(neutral, { recursive: true, force: true });
  }
}

/**
 * Puts the repo on `branch`, creating it from the current branch when
 * missing. Never switches away from uncommitted work.
 */
export async function ensureBranch(repoDir: string, branch: string): Promise<void> {
  if (!(await isBranchName(branch))) throw new InvalidInputError(`branchName "${branch}" is not a valid git branch name; fix it in prd.json`);
  if ((await currentBranch(repoDir)) === branch) return;
  if (await isDirty(repoDir)) {
    throw new InvalidInputError(`the working tree in ${repoDir} has uncommitted changes; commit or stash them before the loop switches to branch ${branch}`);
  }
  const exists = await execa("git", ["rev-parse", "--verify", "--quiet", `refs/heads/${branch}`], { cwd: repoDir, reject: false });
  await git(repoDir, exists.exitCode === 0 ? ["switch", branch] : ["switch", "-c", branch]);
}
