import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { InvalidInputError } from "../util/errors.js";
import type { LoopSummary } from "../contract/schemas.js";
import { openTask } from "../loop/engine.js";
import { expectOk } from "./api.js";
import type { ControlClient } from "./connection.js";

const git = async (cwd: string, args: string[]) => {
  const r = await execa("git", args, { cwd, reject: false });
  if (r.exitCode !== 0) throw new InvalidInputError(`git ${args[0]} failed: ${r.stderr.trim()}`);
  return r.stdout.trim();
};

/**
 * Validates the PRD here, pushes its branch to the origin the daemon will
 * fetch, and asks the daemon to start the loop.
 */
export async function startRemoteLoop(
  client: ControlClient,
  opts: {
    taskDir: string;
    origin?: string;
    maxIterations?: number;
    model?: string;
    maxCostUsd?: number;
    maxTokens?: number;
    stallTimeoutSeconds?: number;
    allowNet?: string[];
    limits?: { memoryMb?: number; pids?: number; cpuWeight?: number };
  },
): Promise<LoopSummary> {
  const taskDir = resolve(opts.taskDir);
  const prdFile = join(taskDir, "prd.json");
  if (!existsSync(prdFile)) throw new InvalidInputError(`no prd.json in ${taskDir}`);
  // A malformed PRD, a file leading out of the repository, or no repository at all.
  const task = await openTask(taskDir);
  const { prd, repoDir: root } = task;
  if (await git(root, ["status", "--porcelain", "--", task.prdFile])) {
    throw new InvalidInputError(`${task.prdFile} has uncommitted changes: commit it, the daemon works from what is pushed`);
  }
  const origin = opts.origin ?? (await git(root, ["remote", "get-url", "origin"]));
  if (origin.startsWith("-")) throw new InvalidInputError(`origin "${origin}" could be read as a git option`);
  const branch = prd.branchName;
  const local = await execa("git", ["rev-parse", "--verify", "--quiet", `refs/heads/${branch}`], { cwd: root, reject: false });
  const source = local.exitCode === 0 ? `refs/heads/${branch}` : "HEAD";
  const pushed = await execa("git", ["push", "-q", origin, `${source}:refs/heads/${branch}`], { cwd: root, reject: false });
  if (pushed.exitCode !== 0) {
    const behind = /rejected|non-fast-forward|fetch first/.test(pushed.stderr);
    throw new InvalidInputError(
      behind
        ? `the origin's ${branch} has commits this clone lacks (an earlier loop's work?): pull them first (git pull ${origin} ${branch}), then start again`
        : `could not push ${branch} to ${origin}: ${pushed.stderr.trim()}`,
    );
  }
  const { loop } = await expectOk(
    client.remoteName,
    client.api.loops.$post({
      json: {
        origin,
        branch,
        taskDir: task.rel,
        ...(opts.maxIterations ? { maxIterations: opts.maxIterations } : {}),
        ...(opts.model ? { model: opts.model } : {}),
        ...(opts.maxCostUsd !== undefined ? { maxCostUsd: opts.maxCostUsd } : {}),
        ...(opts.maxTokens !== undefined ? { maxTokens: opts.maxTokens } : {}),
        ...(opts.stallTimeoutSeconds !== undefined ? { stallTimeoutSeconds: opts.stallTimeoutSeconds } : {}),
        ...(opts.allowNet?.length ? { allowNet: opts.allowNet } : {}),
        ...(opts.limits ? { limits: opts.limits } : {}),
      },
    }),
  );
  return loop;
}
