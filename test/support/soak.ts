// A long-lived daemon driven through many short loops, for the soak test and
// the retention benchmark: a real network, ralphd, opencode and git.
import { readFileSync, readdirSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { expectOk } from "../../src/client/api.js";
import type { Health, PruneResult } from "../../src/contract/schemas.js";
import type { ControlClient } from "../../src/client/connection.js";
import { startRemoteLoop } from "../../src/client/start.js";
import type { ScriptedModel } from "../../src/model/scripted-model.js";
import { waitFor } from "../../src/util/wait.js";
import { makeProject, ralph } from "./daemon-harness.js";
import { processTree } from "./sockets.js";

export type LoopKind = "complete" | "fail" | "stop";

/** Branches: one per completing loop (its commits move the branch on), one shared by failing and one by stopped loops. */
export const soakBranches = (completing: number) => [...Array.from({ length: completing }, (_, i) => `ralph/c${i}`), "ralph/fail", "ralph/stop"];

/**
 * Starts and stops loops through one long-lived control client, with the
 * code `ralph start` and `ralph stop` run: a new process and Ziti login per
 * command would cost seconds a loop beside the loops it drives. Prunes
 * through the CLI, as a user would.
 */
export class SoakDriver {
  private completed = 0;
  constructor(
    readonly home: string,
    readonly model: ScriptedModel,
    readonly project: ReturnType<typeof makeProject>,
    public client: ControlClient,
  ) {}

  async cli(args: string[]): Promise<string> {
    const r = await ralph(this.home, args, this.project.repo);
    if (r.code !== 0) throw new Error(`ralph ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
    return r.stdout;
  }

  status = async (id: string): Promise<string> => (await expectOk(this.client.remoteName, this.client.api.loops[":id"].$get({ param: { id } }))).loop.status;

  async start(branch: string, opts: { maxIterations?: number; stallTimeoutSeconds?: number } = {}): Promise<string> {
    execFileSync("git", ["switch", "-q", branch], { cwd: this.project.repo });
    return (await startRemoteLoop(this.client, { taskDir: join(this.project.repo, "task"), ...opts })).id;
  }

  async until(id: string, status: string): Promise<void> {
    await waitFor(async () => (await this.status(id)) === status, { what: `loop ${id} to be ${status}`, timeoutMs: 180_000, intervalMs: 200 });
  }

  /** Runs one loop to its end: it completes, fails (the model refuses every request) or is stopped while it waits for the model. */
  async run(kind: LoopKind): Promise<string> {
    if (kind === "complete") {
      this.model.setScript({ kind: "ralph-agent" });
      const id = await this.start(`ralph/c${this.completed++}`);
      await this.until(id, "completed");
      return id;
    }
    if (kind === "fail") {
      this.model.setScript({ kind: "error", status: 400 });
      const id = await this.start("ralph/fail", { maxIterations: 5 });
      await this.until(id, "failed");
      return id;
    }
    this.model.setScript({ kind: "hang" });
    const before = this.model.requestCount();
    const id = await this.start("ralph/stop");
    await waitFor(() => this.model.requestCount() > before, { what: `loop ${id}'s first model request`, timeoutMs: 60_000 });
    await expectOk(this.client.remoteName, this.client.api.loops[":id"].stop.$post({ param: { id } }));
    return id;
  }

  prune = async (): Promise<PruneResult> => JSON.parse(await this.cli(["prune", "--json"])) as PruneResult;

  /** The daemon's disk, measured after `since` (pruning starts a measurement). */
  async disk(since: string): Promise<NonNullable<Health["disk"]>> {
    return waitFor(
      async () => {
        const d = (await expectOk(this.client.remoteName, this.client.api.health.$get())).disk;
        return d && d.measuredAt > since ? d : undefined;
      },
      { what: "a disk measurement after pruning", timeoutMs: 30_000, intervalMs: 200 },
    );
  }
}

/** What a daemon holds: its processes, its open files, its resident memory. */
export function footprint(pid: number): { processes: number; fds: number; rssBytes: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { processes: processTree(pid).length, fds: readdirSync(`/proc/${pid}/fd`).length, rssBytes: rssKb * 1024 };
}

export const workspaceEntries = (home: string) => {
  const ws = join(home, "daemon", "workspace");
  return { worktrees: readdirSync(join(ws, "loops")), mirrors: readdirSync(join(ws, "repos")), state: readdirSync(join(ws, "state")) };
};
