import { existsSync, lstatSync, mkdirSync, rmSync, statSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { execa } from "execa";
import { DEFAULT_LIMITS, type Limits } from "../sandbox/limits.js";
import { modelEndpoints, modelKeyNames, type OpencodeConfig } from "../sandbox/model-endpoints.js";
import type { NetRule } from "../sandbox/net-rules.js";
import type { SandboxPlan } from "../sandbox/sandbox.js";
import { readContained } from "./contained.js";

/** How `ralph run` sandboxes its loop: on unless --no-sandbox, with the hosts --allow-net adds. */
export interface LocalSandboxOptions {
  enabled: boolean;
  allowNet?: NetRule[];
  limits?: Limits;
  /** Host paths shown read-only besides the system (--read-only: a toolchain in your home). */
  readOnly?: string[];
}

/** The repository's own opencode.json, as it is before the agent runs (the owner's file, trusted for a local run). */
function repoConfig(repoDir: string): OpencodeConfig | undefined {
  try {
    const bytes = readContained(repoDir, "opencode.json");
    return bytes ? (JSON.parse(bytes.toString("utf8")) as OpencodeConfig) : undefined;
  } catch {
    // Unreadable or not JSON: opencode will say so; no endpoint comes from it.
    return undefined;
  }
}

/**
 * Where git keeps this repository's data, which the agent must write to
 * commit, and its configuration and hooks, which the agent must not: git runs
 * what they name, later, as the owner.
 */
async function gitMounts(repoDir: string): Promise<{ rw: string[]; ro: string[]; gitDir: string }> {
  const r = await execa("git", ["rev-parse", "--absolute-git-dir", "--git-common-dir", "--git-path", "hooks"], { cwd: repoDir });
  const [gitDir, common, hooks] = r.stdout.split("\n").map((p) => (isAbsolute(p) ? p : resolve(repoDir, p))) as [string, string, string];
  mkdirSync(hooks, { recursive: true });
  const ro = [join(common, "config"), hooks];
  if (existsSync(join(gitDir, "config.worktree"))) ro.push(join(gitDir, "config.worktree"));
  // A linked worktree's .git is a file naming its git dir.
  const dotGit = join(repoDir, ".git");
  if (existsSync(dotGit) && lstatSync(dotGit).isFile()) ro.push(dotGit);
  return { rw: common === gitDir ? [gitDir] : [gitDir, common], ro, gitDir };
}

/**
 * The sandbox of a local run: the repository read-write except git's
 * configuration and hooks, the model endpoints its opencode.json and --model
 * name, and from the environment only the keys its providers read.
 */
export async function localSandboxPlan(opts: {
  repoDir: string;
  runDir: string;
  name: string;
  model?: string;
  sandbox: LocalSandboxOptions;
  onRefused: (host: string, port: number) => void;
}): Promise<{ plan: SandboxPlan; env: Record<string, string>; checkGit: () => string | undefined }> {
  const config = repoConfig(opts.repoDir);
  const keys = Object.fromEntries(modelKeyNames(config).flatMap((k) => (process.env[k] ? [[k, process.env[k]!]] : [])));
  const git = await gitMounts(opts.repoDir);
  const endpoints = opts.sandbox.enabled ? modelEndpoints({ config, env: keys, model: opts.model }).rules : [];
  // Root runs the agent as the repository's owner; a repository root owns stays root's, without capabilities.
  const owner = statSync(opts.repoDir);
  const user = process.getuid?.() === 0 && owner.uid !== 0 ? { uid: owner.uid, gid: owner.gid } : undefined;
  const commondir = join(git.gitDir, "commondir");
  const hadCommondir = existsSync(commondir);
  return {
    plan: {
      enabled: opts.sandbox.enabled,
      name: opts.name,
      dir: join(opts.runDir, "box"),
      worktree: opts.repoDir,
      rw: git.rw,
      ro: git.ro,
      readOnly: opts.sandbox.readOnly,
      allow: [...endpoints, ...(opts.sandbox.allowNet ?? [])],
      limits: opts.sandbox.limits ?? DEFAULT_LIMITS,
      user,
      onRefused: opts.onRefused,
    },
    env: keys,
    // A commondir file would point git at a configuration the agent wrote.
    checkGit: () => {
      if (hadCommondir || !existsSync(commondir)) return undefined;
      rmSync(commondir, { force: true });
      return `the agent created ${commondir}, which would make git read a configuration it wrote: the file was removed and the loop stopped`;
    },
  };
}
