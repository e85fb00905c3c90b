import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { join } from "node:path";
import { runLoop } from "../loop/engine.js";
import type { LoopEvent } from "../loop/events.js";
import { adoptOpencodeServer, startOpencodeServer, OPENCODE_USERNAME, type OpencodeServer } from "../opencode/server.js";
import { commandLineOf } from "../process/proc-scan.js";
import { sleep } from "../util/wait.js";
import type { ManagementClient } from "../ziti/mgmt.js";
import { loopServiceName } from "../ziti/roles.js";
import type { DaemonConfig } from "./config.js";
import { readCatalog, type Catalog } from "./catalog.js";
import { opencodeSettings, type OpencodeSettings } from "./opencode-settings.js";
import { RpcError, type LoopSummary, type StartLoopRequest } from "./rpc.js";
import { ACTIVE_STATES, type LoopRow, type LoopState, type Store, type StoredEvent } from "./store.js";
import { Workspace, resolveTaskDirIn, validateBranch, validateOrigin, validateTaskDir } from "./workspace.js";

export function summaryOf(row: LoopRow): LoopSummary {
  const { worktree: _w, opencodeUrl: _u, opencodePid: _p, opencodePassword: _pw, ...rest } = row;
  return rest;
}

interface Running {
  stop: AbortController;
  done: Promise<void>;
}

/**
 * Runs loops for the daemon: slots, one loop per branch, a worktree and an
 * opencode server per loop, events into the store, pushes back to the origin.
 */
export class LoopManager extends EventEmitter<{ event: [StoredEvent] }> {
  private readonly running = new Map<string, Running>();
  private readonly workspace: Workspace;
  private readonly settings: OpencodeSettings;
  private catalogCache: { at: number; value: Promise<Catalog> } | undefined;
  /** Each loop's latest registration of its attach service, still running or done. */
  private readonly registrations = new Map<string, Promise<void>>();

  constructor(
    private readonly config: DaemonConfig,
    private readonly store: Store,
    private readonly mgmt: ManagementClient,
    private readonly log: (line: string) => void,
  ) {
    super();
    this.workspace = new Workspace(config.workspaceDir);
    this.settings = opencodeSettings(config);
  }

  list(): LoopSummary[] {
    return this.store.listLoops().map(summaryOf);
  }

  get(id: string): LoopRow {
    const row = this.store.getLoop(id);
    if (!row) throw new RpcError("not_found", `no loop "${id}" on this daemon ('ralph ls' lists them)`);
    return row;
  }

  activeCount(): number {
    return this.running.size;
  }

  /** Models and agents loops may use here; asked of opencode at most every 5 minutes. */
  catalog(): Promise<Catalog> {
    if (!this.catalogCache || Date.now() - this.catalogCache.at > 5 * 60_000) {
      const value = readCatalog(join(this.config.workspaceDir, "state"), this.settings);
      this.catalogCache = { at: Date.now(), value };
      value.catch(() => (this.catalogCache = undefined));
    }
    return this.catalogCache.value;
  }

  private record(loopId: string, event: StoredEvent["event"]): void {
    const seq = this.store.appendEvent(loopId, event);
    this.emit("event", { seq, loopId, event });
  }

  private setStatus(id: string, status: LoopState, reason?: string): void {
    const ended = ACTIVE_STATES.includes(status) ? {} : { endedAt: new Date().toISOString() };
    this.store.updateLoop(id, { status, reason: reason ?? null, ...ended });
    this.record(id, { type: "loop.status", time: new Date().toISOString(), status, ...(reason ? { reason } : {}) });
  }

  async start(req: StartLoopRequest): Promise<LoopSummary> {
    validateOrigin(req.origin);
    await validateBranch(req.branch);
    const taskDir = validateTaskDir(req.taskDir);
    if (this.running.size >= this.config.maxConcurrentLoops) {
      throw new RpcError("busy", `the daemon is full (${this.config.maxConcurrentLoops} loops running): stop one or wait`);
    }
    const clash = this.store.activeLoops().find((l) => l.origin === req.origin && l.branch === req.branch);
    if (clash) throw new RpcError("conflict", `loop ${clash.id} is already running on branch ${req.branch} of ${req.origin}`);
    const id = randomBytes(4).toString("hex");
    const worktree = join(this.config.workspaceDir, "loops", id);
    this.store.insertLoop({
      id,
      origin: req.origin,
      branch: req.branch,
      taskDir,
      worktree,
      maxIterations: req.maxIterations,
      iterationTimeoutSeconds: req.iterationTimeoutSeconds,
      model: req.model ?? null,
    });
    const stop = new AbortController();
    const done = this.execute(id, req, stop.signal).finally(() => this.running.delete(id));
    this.running.set(id, { stop, done });
    return summaryOf(this.get(id));
  }

  async stop(id: string): Promise<LoopSummary> {
    const row = this.get(id);
    const r = this.running.get(id);
    if (!r) throw new RpcError("conflict", `loop ${id} is not running (it is ${row.status})`);
    r.stop.abort();
    await r.done;
    return summaryOf(this.get(id));
  }

  /** Stops every loop (daemon shutdown). */
  async stopAll(): Promise<void> {
    for (const r of this.running.values()) r.stop.abort();
    await Promise.all([...this.running.values()].map((r) => r.done));
  }

  private serverStarter(id: string, worktree: string) {
    return async (): Promise<OpencodeServer> => {
      const dir = join(this.config.workspaceDir, "state", id);
      const server = await startOpencodeServer({
        cwd: worktree,
        stateDir: join(dir, "opencode"),
        logFile: join(dir, "opencode.log"),
        ...this.settings,
        // Survives a daemon crash so a restarted daemon can re-adopt it.
        keepAliveAfterParentExit: true,
      });
      const service = loopServiceName(this.config.name, id);
      this.store.updateLoop(id, { opencodeUrl: server.url, opencodePid: server.pid, opencodePassword: server.password, service });
      // Only attach needs the service: the first iteration does not wait for
      // it. Registrations of one loop run in order (opencode may restart).
      const registered = (this.registrations.get(id) ?? Promise.resolve())
        .then(() => this.mgmt.deregisterService(service))
        .then(() => this.mgmt.registerService(service, { port: server.port, daemon: this.config.name }))
        .then(
          () => undefined,
          (err: unknown) => this.log(`loop ${id}: could not register ${service} for attach: ${(err as Error).message}`),
        );
      this.registrations.set(id, registered);
      return server;
    };
  }

  private async execute(id: string, req: StartLoopRequest, stop: AbortSignal, resume?: { server: OpencodeServer; iteration: number }): Promise<void> {
    const signal = AbortSignal.any([stop, AbortSignal.timeout(this.config.loopTimeLimitSeconds * 1000)]);
    const row = this.get(id);
    let worktree = row.worktree;
    try {
      if (!resume) worktree = await this.workspace.checkout(id, req.origin, req.branch);
      const taskDir = resolveTaskDirIn(worktree, row.taskDir);
      this.setStatus(id, "running");
      const result = await runLoop({
        taskDir,
        repoDir: worktree,
        maxIterations: req.maxIterations,
        model: req.model,
        iterationTimeoutMs: req.iterationTimeoutSeconds * 1000,
        signal,
        startServer: this.serverStarter(id, worktree),
        existingServer: resume?.server,
        startIteration: resume?.iteration,
        onEvent: (e: LoopEvent) => {
          this.record(id, e);
          if (e.type === "iteration.started") this.store.updateLoop(id, { iteration: e.iteration, storyId: e.storyId ?? null });
          if (e.type === "iteration.ended" || e.type === "run.started") this.store.updateLoop(id, { passed: e.passed, total: e.total });
        },
        afterIteration: async ({ committed }) => {
          if (committed) await this.pushWithRetry(id, worktree, req.branch);
        },
      });
      await this.pushWithRetry(id, worktree, req.branch);
      const reason = stop.aborted ? "stopped by request" : signal.aborted ? `time limit of ${this.config.loopTimeLimitSeconds}s reached` : result.reason;
      this.setStatus(id, result.status, reason);
    } catch (err) {
      this.setStatus(id, "failed", (err as Error).message);
    } finally {
      await this.release(id, worktree);
    }
  }

  /** What an ended loop held: its attach service and its worktree. */
  private async release(id: string, worktree: string): Promise<void> {
    await this.registrations.get(id);
    this.registrations.delete(id);
    const service = this.get(id).service;
    if (service) await this.mgmt.deregisterService(service).catch(() => undefined);
    await this.workspace.remove(worktree);
  }

  /** Non-fatal: a push that fails three times is reported, and the next iteration's or the final push tries again. */
  private async pushWithRetry(id: string, worktree: string, branch: string): Promise<void> {
    const time = () => new Date().toISOString();
    for (let attempt = 1; ; attempt++) {
      try {
        const commit = await this.workspace.push(worktree, branch);
        this.record(id, { type: "loop.pushed", time: time(), branch, commit });
        return;
      } catch (err) {
        if (attempt === 3) {
          this.log(`loop ${id}: ${(err as Error).message}`);
          this.record(id, { type: "loop.push-failed", time: time(), branch, error: (err as Error).message });
          return;
        }
        await sleep(1000 * attempt);
      }
    }
  }

  /**
   * After a daemon restart: loops whose opencode is still alive carry on with
   * it; the others are marked failed with the reason.
   */
  readopt(): { adopted: string[]; failed: string[] } {
    const adopted: string[] = [];
    const failed: string[] = [];
    for (const row of this.store.activeLoops()) {
      const { opencodePid: pid, opencodeUrl: url, opencodePassword: password } = row;
      // The pid must still be that opencode, not a process that reused it.
      if (pid && url && password && commandLineOf(pid)?.includes(new URL(url).port)) {
        const server = adoptOpencodeServer({ url, username: OPENCODE_USERNAME, password, pid });
        const stop = new AbortController();
        const req = {
          origin: row.origin,
          branch: row.branch,
          taskDir: row.taskDir,
          maxIterations: row.maxIterations,
          model: row.model ?? undefined,
          iterationTimeoutSeconds: row.iterationTimeoutSeconds,
        };
        // The interrupted iteration counts as done; the loop resumes after it.
        const done = this.execute(row.id, req, stop.signal, { server, iteration: row.iteration }).finally(() => this.running.delete(row.id));
        this.running.set(row.id, { stop, done });
        adopted.push(row.id);
      } else {
        this.setStatus(row.id, "failed", `ralphd restarted and the loop's opencode${row.opencodePid ? ` (pid ${row.opencodePid})` : ""} was gone`);
        void this.release(row.id, row.worktree);
        failed.push(row.id);
      }
    }
    return { adopted, failed };
  }
}
