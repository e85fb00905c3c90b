import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { loadavg } from "node:os";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { ralphHome } from "../config/paths.js";
import { runLoop } from "../loop/engine.js";
import type { LoopEvent } from "../loop/events.js";
import { opencodeVersion } from "../opencode/binary.js";
import { VERSION } from "../version.js";
import { ZITI_VERSION } from "../ziti/binary.js";
import { adoptOpencodeServer, startOpencodeServer, OPENCODE_USERNAME, type OpencodeServer } from "../opencode/server.js";
import { commandLineOf } from "../process/proc-scan.js";
import { sleep } from "../util/wait.js";
import type { ZitiHost } from "../ziti/host.js";
import { loopsServiceName } from "../ziti/roles.js";
import type { DaemonConfig } from "./config.js";
import { readCatalog } from "./catalog.js";
import { opencodeSettings, type OpencodeSettings } from "./opencode-settings.js";
import { notificationFor, SHUTDOWN } from "./loop-notifications.js";
import type { Notifier } from "./notify.js";
import { ApiError } from "../contract/errors.js";
import { LoopSummarySchema, type AttachPoint, type Catalog, type DeliveryResult, type DiskUsage, type Health, type LoopSummary, type PruneResult, type StartLoopRequest } from "../contract/schemas.js";
import { ACTIVE_STATES, type LoopRow, type LoopState, type Store, type StoredEvent } from "./store.js";
import { Workspace, resolveTaskDirIn, validateBranch, validateTaskDir } from "./workspace.js";
import { pinnedProviders, plannedSandbox, sandboxDirOf, sandboxPlanOf, sandboxUserOf } from "./loop-sandbox.js";
import { refusalReporter } from "../sandbox/refusals.js";
import type { SandboxInfo } from "../sandbox/info.js";
import { checkOrigin, type OriginPolicy } from "./origins.js";
import { Retention } from "./retention.js";
import { DiskGauge } from "./disk.js";
import { openEventFeed } from "./event-feed.js";
import { orphanedReason } from "../sandbox/sandbox.js";
import { sessionUsage } from "../opencode/session.js";
import { addUsage, type Usage } from "../loop/usage.js";

/** A loop as the API shows it: the contract's fields only, so that no column (a secret, a path) goes out unless the contract names it. */
export function summaryOf(row: LoopRow): LoopSummary {
  return LoopSummarySchema.parse(row);
}

/**
 * Event-stream followers served at once. Each holds a listener on the
 * manager, which warns beyond this many: a follower past the cap is refused
 * as busy, so a warning still means a leak.
 */
export const MAX_FOLLOWERS = 64;

/** How long an attach waits for a starting loop's opencode. */
const ATTACH_WAIT_MS = 120_000;

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
  /** Each loop's latest hosting of its opencode for attach (true once dialable), still running or done. */
  private readonly hostings = new Map<string, Promise<boolean>>();
  private readonly origins: OriginPolicy;
  /** Origins of loops being started, counted: their mirror is in use before their row exists. */
  private readonly startingOrigins = new Map<string, number>();
  private readonly retention: Retention;
  private readonly disk: DiskGauge;
  private readonly startedAt = Date.now();
  /** Set when the daemon lets go of its loops to exit (see detach). */
  private detached = false;
  /** Each loop's last commit pushed: a push of the same commit again is not news. */
  private readonly pushed = new Map<string, string>();
  /** Each running loop's reporter of refused connections. */
  private readonly refusals = new Map<string, ReturnType<typeof refusalReporter>>();

  constructor(
    private readonly config: DaemonConfig,
    private readonly store: Store,
    /** Hosts each loop's opencode as the terminator named by its id on the daemon's loops service. */
    private readonly host: Pick<ZitiHost, "host" | "unhost" | "hosted" | "terminators">,
    private readonly log: (line: string) => void,
    private readonly notifier: Notifier,
  ) {
    super();
    this.setMaxListeners(MAX_FOLLOWERS);
    this.workspace = new Workspace(config.workspaceDir);
    this.settings = opencodeSettings(config);
    this.origins = { allowed: config.allowedOrigins, forbiddenDirs: [config.workspaceDir, ralphHome()] };
    const stateDir = join(config.workspaceDir, "state");
    this.retention = new Retention(store, this.workspace, stateDir, config.retention.worktreeDays, () => this.startingOrigins.keys(), log);
    this.disk = new DiskGauge({ worktrees: this.workspace.worktreesDir, mirrors: this.workspace.mirrorsDir, state: [stateDir, join(ralphHome(), "daemon")] });
  }

  list(): LoopSummary[] {
    return this.store.listLoops().map(summaryOf);
  }

  get(id: string): LoopRow {
    const row = this.store.getLoop(id);
    if (!row) throw new ApiError("not_found", `no loop "${id}" on this daemon ('ralph ls' lists them)`);
    return row;
  }

  activeCount(): number {
    return this.running.size;
  }

  /** Calls `onEvent` with every event from now on, until the returned function is called; refused as busy at the cap. */
  follow(onEvent: (e: StoredEvent) => void): () => void {
    if (this.followers() >= MAX_FOLLOWERS) throw new ApiError("busy", `the daemon already streams events to ${MAX_FOLLOWERS} followers: try again later`);
    this.on("event", onEvent);
    return () => this.off("event", onEvent);
  }

  followers(): number {
    return this.listenerCount("event");
  }

  async health(): Promise<Health> {
    return {
      name: this.config.name,
      healthy: true,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      loops: { active: this.activeCount(), total: this.store.countLoops(), max: this.config.maxConcurrentLoops },
      followers: { active: this.followers(), max: MAX_FOLLOWERS },
      load: loadavg(),
      memory: { rssBytes: process.memoryUsage().rss },
      disk: this.diskUsage(),
      versions: { ralph: VERSION, node: process.version, ziti: ZITI_VERSION, opencode: await opencodeVersion() },
    };
  }

  /** A follower's events of one loop or all, from a position (see openEventFeed). */
  events(opts: { loopId?: string; position: { name: string; raw: string }; signal: AbortSignal }): ReturnType<typeof openEventFeed> {
    if (opts.loopId) this.get(opts.loopId);
    return openEventFeed(this.store, (on) => this.follow(on), opts);
  }

  /** Sends a test message to every notification target now and says how each went. */
  async testNotifications(): Promise<DeliveryResult[]> {
    const name = this.config.name;
    return this.notifier.test({
      kind: "test",
      daemon: name,
      loopId: "",
      title: `Ralph Remote test from ${name}`,
      message: `Notifications from ralphd ${name} reach you.`,
      time: new Date().toISOString(),
      details: {},
    });
  }

  /** Models and agents loops may use here; asked of opencode at most every 5 minutes. */
  catalog(): Promise<Catalog> {
    if (!this.catalogCache || Date.now() - this.catalogCache.at > 5 * 60_000) {
      const value = readCatalog(join(this.config.workspaceDir, "state"), this.settings, { enabled: this.config.sandbox !== "off", user: sandboxUserOf("0") });
      this.catalogCache = { at: Date.now(), value };
      value.catch(() => (this.catalogCache = undefined));
    }
    return this.catalogCache.value;
  }

  private record(loopId: string, event: StoredEvent["event"]): void {
    // A daemon that let go of its loops (a restart) records nothing more of them: the next one carries on.
    if (this.detached) return;
    const seq = this.store.appendEvent(loopId, event);
    const stored = { seq, loopId, event };
    this.emit("event", stored);
    const note = notificationFor(this.config.name, this.get(loopId), stored);
    if (note) this.notifier.notify(note);
  }

  /** The request's budget, else the daemon's default; refused above the daemon's ceiling. */
  private budgetFor(req: StartLoopRequest): { maxCostUsd: number | null; maxTokens: number | null } {
    const b = this.config.budget;
    if (req.maxCostUsd !== undefined && b.maxCostUsd !== undefined && req.maxCostUsd > b.maxCostUsd) {
      throw new ApiError("invalid_request", `maxCostUsd ${req.maxCostUsd} is above this daemon's ceiling of ${b.maxCostUsd} USD per loop (budget.maxCostUsd in its config): ask for less`);
    }
    if (req.maxTokens !== undefined && b.maxTokens !== undefined && req.maxTokens > b.maxTokens) {
      throw new ApiError("invalid_request", `maxTokens ${req.maxTokens} is above this daemon's ceiling of ${b.maxTokens} tokens per loop (budget.maxTokens in its config): ask for less`);
    }
    // With a ceiling and no default, a loop that names no budget gets the ceiling.
    return { maxCostUsd: req.maxCostUsd ?? b.defaultMaxCostUsd ?? b.maxCostUsd ?? null, maxTokens: req.maxTokens ?? b.defaultMaxTokens ?? b.maxTokens ?? null };
  }

  private setStatus(id: string, status: LoopState, reason?: string): void {
    if (this.detached) return;
    const ended = ACTIVE_STATES.includes(status) ? {} : { endedAt: new Date().toISOString() };
    this.store.updateLoop(id, { status, reason: reason ?? null, ...ended });
    this.record(id, { type: "loop.status", time: new Date().toISOString(), status, ...(reason ? { reason } : {}) });
  }

  async start(req: StartLoopRequest): Promise<LoopSummary> {
    checkOrigin(req.origin, this.origins);
    await validateBranch(req.branch);
    const taskDir = validateTaskDir(req.taskDir);
    const budget = this.budgetFor(req);
    const sandbox = await plannedSandbox(this.config, this.settings, req);
    this.startingOrigins.set(req.origin, (this.startingOrigins.get(req.origin) ?? 0) + 1);
    try {
      return await this.create(req, taskDir, budget, sandbox);
    } finally {
      const n = this.startingOrigins.get(req.origin)! - 1;
      if (n > 0) this.startingOrigins.set(req.origin, n);
      else this.startingOrigins.delete(req.origin);
    }
  }

  private async create(req: StartLoopRequest, taskDir: string, budget: ReturnType<LoopManager["budgetFor"]>, sandbox: SandboxInfo): Promise<LoopSummary> {
    // Before any row exists: an origin, branch or task dir that is not there is refused, not a failed loop.
    await this.workspace.fetch(req.origin, req.branch, taskDir);
    if (this.running.size >= this.config.maxConcurrentLoops) {
      throw new ApiError("busy", `the daemon is full (${this.config.maxConcurrentLoops} loops running): stop one or wait`);
    }
    const clash = this.store.activeLoops().find((l) => l.origin === req.origin && l.branch === req.branch);
    if (clash) throw new ApiError("conflict", `loop ${clash.id} is already running on branch ${req.branch} of ${req.origin}`);
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
      stallTimeoutSeconds: req.stallTimeoutSeconds ?? this.config.stallTimeoutSeconds,
      ...budget,
      model: req.model ?? null,
      sandbox,
    });
    const stop = new AbortController();
    const done = this.execute(id, stop.signal).finally(() => this.running.delete(id));
    this.running.set(id, { stop, done });
    return summaryOf(this.get(id));
  }

  async stop(id: string): Promise<LoopSummary> {
    const row = this.get(id);
    const r = this.running.get(id);
    if (!r) throw new ApiError("conflict", `loop ${id} is not running (it is ${row.status})`);
    r.stop.abort();
    await r.done;
    return summaryOf(this.get(id));
  }

  /** Queues the owner's guidance for a running loop's next iteration. */
  say(id: string, text: string): { loopId: string; pending: number } {
    const row = this.get(id);
    if (!this.running.has(id)) throw new ApiError("conflict", `loop ${id} is not running (it is ${row.status}): guidance goes only to a running loop`);
    const pending = this.store.addGuidance(id, text);
    return { loopId: id, pending };
  }

  /** Forgets a finished loop now: its worktree, log, record and events ('ralph rm'). */
  async remove(id: string): Promise<PruneResult> {
    const row = this.get(id);
    if (this.running.has(id) || ACTIVE_STATES.includes(row.status)) throw new ApiError("conflict", `loop ${id} is ${row.status}: stop it first ('ralph stop ${id}')`);
    const result = await this.retention.forget(row);
    void this.disk.measure().catch(() => undefined);
    return result;
  }

  /** Applies the retention period now: worktrees and logs of loops finished longer ago, and mirrors no loop uses. */
  async prune(): Promise<PruneResult> {
    const result = await this.retention.prune();
    void this.disk.measure().catch(() => undefined);
    return result;
  }

  /** The disk the daemon uses, as last measured (measured again in the background when stale). */
  diskUsage(): DiskUsage | null {
    return this.disk.current();
  }

  /**
   * Compares the daemon's Ziti registrations with its running loops. A loop
   * hosting that no running loop owns is removed. A terminator the controller
   * still lists for no running loop is reported: only the controller can
   * delete it, which it does once it finds its host gone (about 30 s after
   * it comes back, measured).
   */
  async reconcile(): Promise<{ unhosted: string[]; stale: string[] }> {
    const unhosted: string[] = [];
    for (const key of this.host.hosted()) {
      if (this.running.has(key) || !this.store.getLoop(key)) continue;
      await this.host.unhost(key);
      this.hostings.delete(key);
      this.log(`reconcile: stopped hosting loop ${key}: it is not running`);
      unhosted.push(key);
    }
    const service = loopsServiceName(this.config.name);
    const stale = (await this.host.terminators(service)).filter((id) => !this.running.has(id));
    for (const id of stale) this.log(`reconcile: the controller still lists terminator ${id} of ${service}, which no running loop owns; it removes it once it finds its host gone`);
    return { unhosted, stale };
  }

  /** Ends every loop, each recorded and notified with the reason "daemon shutdown" ('ralphd stop --loops'). */
  async stopAll(): Promise<void> {
    for (const r of this.running.values()) r.stop.abort(SHUTDOWN);
    await Promise.all([...this.running.values()].map((r) => r.done));
  }

  /**
   * Lets go of every running loop without ending it (a restart, an upgrade):
   * their sandboxes run on, nothing more is recorded or stopped by this
   * daemon, and the next ralphd re-adopts them. The daemon exits after this.
   */
  detach(): string[] {
    this.detached = true;
    return [...this.running.keys()];
  }

  /** The plan of a loop's sandbox; refused connections become its events, a burst of them one event. */
  private sandboxPlan(id: string) {
    const row = this.get(id);
    const refusals = refusalReporter((r) => this.record(id, { type: "sandbox.refused", time: new Date().toISOString(), ...r }));
    this.refusals.set(id, refusals);
    return sandboxPlanOf(this.config, row, this.workspace.sandboxMounts(row.origin, row.worktree), refusals.refused);
  }

  private serverStarter(id: string) {
    return async (): Promise<OpencodeServer> => {
      const pinned = pinnedProviders(this.config);
      const server = await startOpencodeServer({
        sandbox: this.sandboxPlan(id),
        logFile: join(this.config.workspaceDir, "state", id, "opencode.log"),
        env: this.settings.env,
        config: pinned || this.settings.config ? { ...this.settings.config, ...pinned } : undefined,
        // Survives a daemon crash so a restarted daemon can re-adopt it.
        keepAliveAfterParentExit: true,
      });
      this.store.updateLoop(id, { opencodeSocket: server.socket, opencodePid: server.pid, opencodePassword: server.password });
      // Only attach needs it: the first iteration does not wait for it.
      this.hostForAttach(id, server.socket);
      return server;
    };
  }

  /**
   * Hosts the loop's opencode as terminator `id` of the daemon's loops
   * service, in the background. Hostings of one loop run in order (opencode
   * may restart; hosting a key again replaces what it hosted).
   */
  private hostForAttach(id: string, socket: string): void {
    const service = loopsServiceName(this.config.name);
    this.store.updateLoop(id, { service });
    const hosted = (this.hostings.get(id) ?? Promise.resolve(false))
      .then(() => this.host.host(id, service, socket, id))
      .then(
        () => true,
        (err: unknown) => {
          this.log(`loop ${id}: could not host its opencode on ${service} for attach: ${(err as Error).message}`);
          return false;
        },
      );
    this.hostings.set(id, hosted);
  }

  /**
   * Where a client dials the loop's opencode: its terminator on the loops
   * service, once the controller has it (a dial made earlier would fail).
   */
  async attachPoint(id: string): Promise<AttachPoint> {
    const hosting = await this.hostingOf(id);
    const row = this.get(id);
    if (!row.service || !row.opencodePassword || !hosting || !["starting", "running"].includes(row.status)) {
      throw new ApiError("conflict", `loop ${row.id} has no opencode to attach to (it is ${row.status})`);
    }
    // A hosting that failed (e.g. while the helper restarted) is tried once more now.
    if (!(await hosting) && row.opencodeSocket) this.hostForAttach(id, row.opencodeSocket);
    const latest = this.hostings.get(id);
    if (!latest) throw new ApiError("conflict", `loop ${row.id} has no opencode to attach to (it is ${this.get(id).status})`);
    if (!(await latest)) throw new ApiError("internal", `loop ${row.id}: its opencode could not be hosted for attach; see the daemon's log`);
    const now = this.get(id);
    if (!now.opencodePassword || !["starting", "running"].includes(now.status)) throw new ApiError("conflict", `loop ${row.id} has no opencode to attach to (it is ${now.status})`);
    return { service: loopsServiceName(this.config.name), terminator: id, username: OPENCODE_USERNAME, password: now.opencodePassword, session: now.sessionId };
  }

  /**
   * The loop's hosting for attach, waited for while the loop is starting or
   * its opencode is not up yet (attach right after start is the common case);
   * undefined once the loop has ended or the wait is over.
   */
  private async hostingOf(id: string, timeoutMs = ATTACH_WAIT_MS): Promise<Promise<boolean> | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hosting = this.hostings.get(id);
      if (hosting || !ACTIVE_STATES.includes(this.get(id).status)) return hosting;
      if (Date.now() > deadline) throw new ApiError("busy", `loop ${id}'s opencode did not come up within ${timeoutMs / 1000} s: see 'ralph logs ${id}'`);
      await sleep(100);
    }
  }

  private async execute(id: string, stop: AbortSignal, resume?: { server: OpencodeServer }): Promise<void> {
    const signal = AbortSignal.any([stop, AbortSignal.timeout(this.config.loopTimeLimitSeconds * 1000)]);
    const row = this.get(id);
    let worktree = row.worktree;
    try {
      if (!resume) worktree = await this.workspace.checkout(id, row.origin, row.branch, row.sandbox.mode === "on" ? sandboxUserOf(id) : undefined);
      const taskDir = resolveTaskDirIn(worktree, row.taskDir);
      this.setStatus(id, "running");
      const sessions = resume ? await this.interruptedUsage(id, resume.server) : undefined;
      const result = await runLoop({
        taskDir,
        repoDir: worktree,
        maxIterations: row.maxIterations,
        model: row.model ?? undefined,
        iterationTimeoutMs: row.iterationTimeoutSeconds * 1000,
        stallTimeoutMs: row.stallTimeoutSeconds * 1000,
        budget: { maxCostUsd: row.maxCostUsd ?? undefined, maxTokens: row.maxTokens ?? undefined },
        permissionPolicy: this.config.permissionPolicy,
        takeGuidance: (iteration) => this.store.takeGuidance(id, iteration),
        signal,
        startServer: this.serverStarter(id),
        head: () => this.workspace.fetchLoop(id, row.origin, worktree, row.branch),
        existingServer: resume?.server,
        // The interrupted iteration counts as done, with what it used; the loop resumes after it.
        startIteration: resume ? row.iteration : undefined,
        startUsage: sessions,
        onSession: (sessionId) => this.store.updateLoop(id, { sessionId }),
        onEvent: (e: LoopEvent) => {
          // The row first, so that a notification for the event sees it.
          if (e.type === "iteration.started") this.store.updateLoop(id, { iteration: e.iteration, storyId: e.storyId ?? null });
          if (e.type === "iteration.ended") this.store.updateLoop(id, { passed: e.passed, total: e.total, usage: e.totalUsage });
          if (e.type === "run.started") this.store.updateLoop(id, { passed: e.passed, total: e.total });
          this.record(id, e);
        },
        afterIteration: async ({ committed }) => {
          if (committed) await this.pushWithRetry(id, row.origin, worktree, row.branch);
        },
      });
      if (this.detached) return;
      this.store.updateLoop(id, { usage: result.usage });
      await this.pushWithRetry(id, row.origin, worktree, row.branch);
      const reason = stop.aborted ? (stop.reason === SHUTDOWN ? SHUTDOWN : "stopped by request") : signal.aborted ? `time limit of ${this.config.loopTimeLimitSeconds}s reached` : result.reason;
      this.setStatus(id, result.status, reason);
    } catch (err) {
      this.setStatus(id, "failed", (err as Error).message);
    } finally {
      if (!this.detached) await this.release(id);
    }
  }

  /**
   * What the loop used until a restart, the iteration it interrupted
   * included: that iteration's session (and its sub-agents') is stopped and
   * read back from opencode, so a re-adopted loop counts what an
   * uninterrupted one would.
   */
  private async interruptedUsage(id: string, server: OpencodeServer): Promise<Usage> {
    const row = this.get(id);
    if (!row.sessionId) return row.usage;
    try {
      const spent = await sessionUsage(server, row.sessionId);
      const usage = addUsage(row.usage, spent);
      this.store.updateLoop(id, { usage, sessionId: null });
      return usage;
    } catch (err) {
      this.log(`loop ${id}: could not read what its interrupted iteration used (${(err as Error).message}); the loop's figures leave it out`);
      return row.usage;
    }
  }

  /** What an ended loop held: its terminator for attach and its worktree. */
  private async release(id: string): Promise<void> {
    const hosting = this.hostings.get(id);
    if (hosting) {
      await hosting;
      this.hostings.delete(id);
      await this.host.unhost(id).catch((err: unknown) => this.log(`loop ${id}: could not stop hosting its opencode: ${(err as Error).message}`));
    }
    this.refusals.get(id)?.flush();
    this.refusals.delete(id);
    this.pushed.delete(id);
    // What only a running loop needs: its opencode's password, and its
    // sandbox's HOME, /tmp and sockets. The worktree and log stay for
    // inspection until the retention period ends.
    this.store.updateLoop(id, { opencodePassword: null, opencodeSocket: null, opencodePid: null });
    rmSync(sandboxDirOf(this.config.workspaceDir, id), { recursive: true, force: true });
  }

  /** Non-fatal: a push that fails three times is reported, and the next iteration's or the final push tries again. */
  private async pushWithRetry(id: string, origin: string, worktree: string, branch: string): Promise<void> {
    const time = () => new Date().toISOString();
    for (let attempt = 1; ; attempt++) {
      try {
        const head = await this.workspace.fetchLoop(id, origin, worktree, branch);
        if (this.pushed.get(id) === head) return;
        const commit = await this.workspace.push(id, origin, branch);
        this.pushed.set(id, commit);
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
  async readopt(): Promise<{ adopted: string[]; failed: string[] }> {
    const adopted: string[] = [];
    const failed: string[] = [];
    for (const row of this.store.activeLoops()) {
      const { opencodePid: pid, opencodeSocket: socket, opencodePassword: password } = row;
      // The pid must still be that loop's sandbox, not a process that reused it.
      if (pid && socket && password && commandLineOf(pid)?.some((arg) => arg.includes(socket))) {
        // Its egress proxy died with the previous ralphd and starts again.
        const server = await adoptOpencodeServer({ sandbox: this.sandboxPlan(row.id), password, pid });
        // So did the host helper: host its opencode again.
        this.hostForAttach(row.id, socket);
        const stop = new AbortController();
        const done = this.execute(row.id, stop.signal, { server }).finally(() => this.running.delete(row.id));
        this.running.set(row.id, { stop, done });
        adopted.push(row.id);
      } else {
        // A sandbox that outlived its daemon too long stopped itself, and said so.
        const orphaned = orphanedReason(sandboxDirOf(this.config.workspaceDir, row.id));
        if (orphaned) this.setStatus(row.id, "stopped", orphaned);
        else this.setStatus(row.id, "failed", `ralphd restarted and the loop's opencode${row.opencodePid ? ` (pid ${row.opencodePid})` : ""} was gone`);
        void this.release(row.id);
        failed.push(row.id);
      }
    }
    return { adopted, failed };
  }
}
