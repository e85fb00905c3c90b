import { createHash } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { basename, isAbsolute, join, normalize, sep } from "node:path";
import { execa } from "execa";
import { ContainmentError, containedDir } from "../loop/contained.js";
import { isBranchName } from "../loop/git.js";
import { ApiError } from "../contract/errors.js";

// Only these transports: no ext::, fd::, or other helpers that run commands.
const PROTOCOLS = ["-c", "protocol.allow=never", "-c", "protocol.file.allow=always", "-c", "protocol.https.allow=always", "-c", "protocol.ssh.allow=always"];

async function git(cwd: string, args: string[], what: string): Promise<string> {
  const r = await execa("git", [...PROTOCOLS, ...args], { cwd, reject: false, env: { GIT_TERMINAL_PROMPT: "0" } });
  if (r.exitCode !== 0) throw new Error(`${what} failed: ${(r.stderr || r.stdout).trim().split("\n").slice(-3).join(" ")}`);
  return r.stdout.trim();
}

export async function validateBranch(branch: string): Promise<void> {
  if (!(await isBranchName(branch))) throw new ApiError("invalid_request", `branch "${branch}" is not a valid git branch name`);
}

/** A task dir relative to the repo that stays inside it. */
export function validateTaskDir(taskDir: string): string {
  const n = normalize(taskDir);
  if (isAbsolute(taskDir) || n === ".." || n.startsWith(`..${sep}`)) {
    throw new ApiError("invalid_request", `taskDir "${taskDir}" leaves the repository: give a path relative to the repository root`);
  }
  return n;
}

/**
 * After checkout: the task dir inside the worktree, no symlink leading it out.
 * The loop resolves each file in it the same way when it reads or writes it.
 */
export function resolveTaskDirIn(worktree: string, taskDir: string): string {
  try {
    const dir = containedDir(worktree, taskDir);
    lstatSync(join(dir, "prd.json"));
    return dir;
  } catch (err) {
    if (err instanceof ContainmentError) throw new ApiError("invalid_request", err.message);
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new ApiError("invalid_request", `no prd.json at ${taskDir} on the branch: push the PRD first`);
    throw err;
  }
}

/** One bare mirror per origin; a fresh worktree per loop. */
export class Workspace {
  constructor(private readonly dir: string) {
    mkdirSync(join(dir, "repos"), { recursive: true, mode: 0o700 });
    mkdirSync(join(dir, "loops"), { recursive: true, mode: 0o700 });
  }

  private bareFor(origin: string): string {
    return join(this.dir, "repos", createHash("sha256").update(origin).digest("hex").slice(0, 16) + ".git");
  }

  /**
   * Fetches the origin into its mirror and checks that `branch` holds
   * TASK_DIR/prd.json, before a loop is created for it. A mirror made for an
   * origin that could not be fetched is removed again.
   */
  async fetch(origin: string, branch: string, taskDir: string): Promise<void> {
    const bare = this.bareFor(origin);
    const fresh = !existsSync(bare);
    try {
      if (fresh) {
        await git(this.dir, ["init", "-q", "--bare", "--", bare], "git init");
        await git(bare, ["remote", "add", "origin", origin], "git remote add");
      }
      // Into remote-tracking refs: fetching into a branch a worktree has checked out is refused.
      await git(bare, ["fetch", "-q", "--prune", "origin", "+refs/heads/*:refs/remotes/origin/*"], `git fetch ${origin}`).catch((err: Error) => {
        throw new ApiError("invalid_request", `cannot fetch ${origin} (${err.message}): check the URL, and that this daemon may read it`);
      });
      const has = await execa("git", ["rev-parse", "--verify", "--quiet", `refs/remotes/origin/${branch}`], { cwd: bare, reject: false });
      if (has.exitCode !== 0) throw new ApiError("invalid_request", `branch "${branch}" does not exist on ${origin}: push it first (ralph start does)`);
      const prd = taskDir === "." ? "prd.json" : `${taskDir}/prd.json`;
      const found = await execa("git", ["cat-file", "-e", `refs/remotes/origin/${branch}:${prd}`], { cwd: bare, reject: false });
      if (found.exitCode !== 0) throw new ApiError("invalid_request", `branch "${branch}" of ${origin} has no ${prd}: commit and push it first`);
    } catch (err) {
      if (fresh) rmSync(bare, { recursive: true, force: true });
      throw err;
    }
  }

  /** Checks out `branch`, as fetched by fetch(), in a new worktree for loop `id`. */
  async checkout(id: string, origin: string, branch: string): Promise<string> {
    const bare = this.bareFor(origin);
    await git(bare, ["worktree", "prune"], "git worktree prune");
    const worktree = join(this.dir, "loops", id);
    // --force: a kept worktree of a finished loop may still have the branch
    // checked out (a daemon that died before detaching it); no running loop
    // has it, since one loop per branch runs at a time.
    await git(bare, ["worktree", "add", "-q", "--force", "-B", branch, "--", worktree, `refs/remotes/origin/${branch}`], "git worktree add");
    return worktree;
  }

  /**
   * A finished loop's worktree, kept for inspection, lets go of its branch so
   * that the next loop on it can check it out; its files stay as they are.
   */
  async detach(worktree: string): Promise<void> {
    if (existsSync(worktree)) await git(worktree, ["checkout", "-q", "--detach"], "git checkout --detach");
  }

  /** Pushes the loop's branch back, never forcing over someone else's work; returns the commit pushed. */
  async push(worktree: string, branch: string): Promise<string> {
    const commit = await git(worktree, ["rev-parse", "HEAD"], "git rev-parse");
    await git(worktree, ["push", "-q", "--force-with-lease", "origin", `${commit}:refs/heads/${branch}`], "git push");
    return commit;
  }

  /** Removes a loop's worktree (gone already is fine) and the mirror's record of it. */
  async removeWorktree(origin: string, worktree: string): Promise<void> {
    // Removed as files: the worktree may hold symlinks out, which are removed, never followed.
    rmSync(worktree, { recursive: true, force: true });
    const bare = this.bareFor(origin);
    if (existsSync(bare)) await git(bare, ["worktree", "prune"], "git worktree prune");
  }

  /** The mirrors of origins not in `inUse`. */
  unusedMirrors(inUse: Iterable<string>): string[] {
    const keep = new Set([...inUse].map((o) => basename(this.bareFor(o))));
    return readdirSync(this.mirrorsDir).filter((name) => !keep.has(name)).map((name) => join(this.mirrorsDir, name));
  }

  /** Removes the mirror of every origin not in `inUse`; returns how many. Synchronous, so no fetch interleaves. */
  removeUnusedMirrors(inUse: Iterable<string>): number {
    const unused = this.unusedMirrors(inUse);
    for (const mirror of unused) rmSync(mirror, { recursive: true, force: true });
    return unused.length;
  }

  get worktreesDir(): string {
    return join(this.dir, "loops");
  }

  get mirrorsDir(): string {
    return join(this.dir, "repos");
  }
}
