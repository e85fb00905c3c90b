import { createHash } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
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

/** One bare mirror per origin; a fresh clone per loop that borrows its objects. */
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
      // Loops' clones borrow its objects: none may ever be pruned under them (mirrors of earlier releases too).
      await git(bare, ["config", "gc.auto", "0"], "git config");
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

  /**
   * A clone of `branch`, as fetched by fetch(), for loop `id`: its own git
   * directory, which borrows the mirror's objects (read-only in the sandbox)
   * instead of sharing the mirror's refs, where every other loop's branch is.
   * `owner`: the sandbox's user when it is not ours (ralphd as root).
   */
  async checkout(id: string, origin: string, branch: string, owner?: { uid: number; gid: number }): Promise<string> {
    const bare = this.bareFor(origin);
    const worktree = join(this.dir, "loops", id);
    const tracking = `refs/remotes/origin/${branch}`;
    await git(this.dir, ["init", "-q", "--", worktree], "git init");
    writeFileSync(join(worktree, ".git", "objects", "info", "alternates"), join(bare, "objects") + "\n");
    // Objects come through the alternate: this copies refs only.
    await git(worktree, ["fetch", "-q", "--no-tags", "--", bare, `+${tracking}:${tracking}`], "git fetch from the mirror");
    await git(worktree, ["checkout", "-q", "--no-track", "-B", branch, tracking], "git checkout");
    // Sample hooks only; the sandbox shows the directory read-only.
    rmSync(join(worktree, ".git", "hooks"), { recursive: true, force: true });
    mkdirSync(join(worktree, ".git", "hooks"));
    if (owner) await execa("chown", ["-hR", `${owner.uid}:${owner.gid}`, "--", worktree]);
    return worktree;
  }

  /** What a loop's sandbox must see read-only of its clone and the mirror: git's config and hooks, and the objects it borrows. */
  sandboxMounts(origin: string, worktree: string): { rw: string[]; ro: string[] } {
    const gitDir = join(worktree, ".git");
    // .git itself is a mount point inside, so the agent can neither rename nor replace it.
    return { rw: [gitDir], ro: [join(gitDir, "config"), join(gitDir, "hooks"), join(this.bareFor(origin), "objects")] };
  }

  /**
   * The commit the loop's branch is at in its clone, fetched into the mirror
   * (as refs/ralph/ID) by git upload-pack, which is made to serve untrusted
   * repositories: the daemon never runs git with the clone's own config.
   */
  async fetchLoop(id: string, origin: string, worktree: string, branch: string): Promise<string> {
    const bare = this.bareFor(origin);
    const ref = `refs/ralph/${id}`;
    // The clone belongs to the sandbox's user when ralphd runs as root; fetch's
    // own -c options do not reach the upload-pack it starts, this one's do.
    const uploadPack = ["--upload-pack", "git -c safe.directory='*' upload-pack"];
    await git(bare, ["fetch", "-q", "--no-tags", "--no-write-fetch-head", ...uploadPack, "--", join(worktree, ".git"), `+refs/heads/${branch}:${ref}`], `fetching ${branch} from the loop's clone`);
    return git(bare, ["rev-parse", "--verify", `${ref}^{commit}`], "git rev-parse");
  }

  /** Pushes what fetchLoop fetched to the origin's branch, never forcing over someone else's work; returns the commit pushed. */
  async push(id: string, origin: string, branch: string): Promise<string> {
    const bare = this.bareFor(origin);
    const commit = await git(bare, ["rev-parse", "--verify", `refs/ralph/${id}^{commit}`], "git rev-parse");
    await git(bare, ["push", "-q", "--force-with-lease", "origin", `${commit}:refs/heads/${branch}`], "git push");
    return commit;
  }

  /** Removes a loop's clone (gone already is fine) and the mirror's record of its branch. */
  async removeWorktree(id: string, origin: string, worktree: string): Promise<void> {
    // Removed as files: the worktree may hold symlinks out, which are removed, never followed.
    rmSync(worktree, { recursive: true, force: true });
    const bare = this.bareFor(origin);
    if (existsSync(bare)) await git(bare, ["update-ref", "-d", `refs/ralph/${id}`], "git update-ref -d");
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
