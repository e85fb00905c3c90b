import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";

export const EXAMPLE_PRD = {
  project: "greeter",
  branchName: "ralph/greeter",
  description: "A tiny example project worked on by a Ralph loop.",
  notes: "Keep every change small.",
  userStories: [
    { id: "US-1", title: "Say hello", description: "A greeting module.", acceptanceCriteria: ["stories/US-1.md describes it"], priority: 1, passes: false },
    { id: "US-2", title: "Say goodbye", description: "A farewell module.", acceptanceCriteria: [{ description: "stories/US-2.md describes it", passes: false }], priority: 2, passes: false },
    { id: "US-3", title: "Document both", description: "A README section.", acceptanceCriteria: ["stories/US-3.md describes it"], priority: 3, passes: false, blockedBy: ["US-1", "US-2"] },
  ],
};

const gitEnv = { GIT_AUTHOR_NAME: "Ralph demo", GIT_AUTHOR_EMAIL: "ralph@localhost", GIT_COMMITTER_NAME: "Ralph demo", GIT_COMMITTER_EMAIL: "ralph@localhost" };
const git = (cwd: string, ...args: string[]) => execa("git", args, { cwd, env: gitEnv });

/**
 * A throwaway repo with the example PRD (and, for the offline demo model, an
 * opencode.json that selects it), plus a bare repo as its file:// origin.
 */
export async function createExampleRepo(dir: string, opencodeConfig?: Record<string, unknown>): Promise<{ repo: string; origin: string; taskDir: string }> {
  const origin = join(dir, "origin.git");
  const repo = join(dir, "greeter");
  const taskDir = join(repo, "ralph");
  mkdirSync(taskDir, { recursive: true });
  await execa("git", ["init", "-q", "--bare", origin]);
  await git(repo, "init", "-q", "-b", "main");
  writeFileSync(join(repo, "README.md"), "# greeter\n\nAn example project for the Ralph Remote demo.\n");
  writeFileSync(join(repo, "AGENTS.md"), "Commit each story on its own.\n");
  if (opencodeConfig) writeFileSync(join(repo, "opencode.json"), JSON.stringify(opencodeConfig, null, 2) + "\n");
  writeFileSync(join(taskDir, "prd.json"), JSON.stringify(EXAMPLE_PRD, null, 2) + "\n");
  await git(repo, "add", "-A");
  await git(repo, "commit", "-q", "-m", "Example project with a PRD");
  await git(repo, "remote", "add", "origin", `file://${origin}`);
  await git(repo, "push", "-q", "origin", "main");
  return { repo, origin, taskDir };
}
