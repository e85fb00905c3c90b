import { join } from "node:path";
import { homeDir } from "../config/paths.js";
import { PrdError, allPass, loadPrd, nextStory, storyCounts, type Prd } from "../prd/prd.js";
import { startOpencodeServer, type OpencodeServer } from "../opencode/server.js";
import { refusalReporter } from "../sandbox/refusals.js";
import { runTurn, type PermissionPolicy, type TurnResult } from "../opencode/session.js";
import { sleep } from "../util/wait.js";
import { stamp, type IterationOutcome, type LoopEvent, type LoopEventInput, type LoopStatus } from "./events.js";
import { addUsage, budgetHit, describeBudgetHit, emptyUsage, type Budget, type Usage } from "./usage.js";
import { ContainmentError, locateTaskDir } from "./contained.js";
import { ensureBranch, headCommit } from "./git.js";
import { localSandboxPlan, type LocalSandboxOptions } from "./local-sandbox.js";
import { appendProgressRecord } from "./progress.js";
import { buildPrompt, loadTemplate } from "./prompt.js";

export interface LoopOptions {
  /** Directory holding prd.json (and optionally prompt.md, progress.txt). */
  taskDir: string;
  /** The git repository; defaults to the one containing taskDir. */
  repoDir?: string;
  maxIterations: number;
  /** "provider/model"; default: the repo's opencode config, else opencode's default. */
  model?: string;
  iterationTimeoutMs: number;
  /** An iteration with no event from opencode for this long is aborted as stalled (default 5 minutes). */
  stallTimeoutMs?: number;
  /** Cost and token limits, checked after every iteration and while one runs. */
  budget?: Budget;
  /** How permission requests are answered (default: reject); questions always get "no human is available". */
  permissionPolicy?: PermissionPolicy;
  /** The owner's pending guidance; each note returned is included in the next prompt once. */
  takeGuidance?: (iteration: number) => string[];
  /** A local run's id and private directory (opencode's state and log). */
  run?: { id: string; dir: string };
  maxConsecutiveFailures?: number;
  /** Off only to measure what accounting costs (the benchmark). */
  accounting?: boolean;
  /** First retry waits this long, doubling per consecutive failure (capped at 60 s). */
  backoffBaseMs?: number;
  signal?: AbortSignal;
  onEvent?: (e: LoopEvent) => void;
  /** How to start opencode (the daemon passes its own; default: a private server under RALPH_HOME, in a sandbox). */
  startServer?: (repoDir: string) => Promise<OpencodeServer>;
  /** The default server's sandbox (default: on, the model's endpoints only). */
  sandbox?: LocalSandboxOptions;
  /**
   * The commit the loop's branch is at, read without running git in the
   * repository the agent controls (the daemon fetches it from its clone); the
   * caller has put the repository on the PRD's branch. Default: the loop
   * switches to the branch itself, and reads HEAD with git.
   */
  head?: () => Promise<string>;
  /** Resume on a server started before (daemon re-adoption). */
  existingServer?: OpencodeServer;
  /** Each iteration's opencode session, when it is made. */
  onSession?: (sessionId: string) => void;
  /** Number of iterations already done (resume). */
  startIteration?: number;
  /** What the iterations already done used (resume). */
  startUsage?: Usage;
  afterIteration?: (info: { iteration: number; committed: boolean; outcome: IterationOutcome }) => Promise<void>;
}

export interface LoopResult {
  status: LoopStatus;
  iterations: number;
  passed: number;
  total: number;
  durationMs: number;
  reason?: string;
  usage: Usage;
}

const outcomeOf = (turn: TurnResult, progressed: boolean): IterationOutcome => {
  if (turn.kind === "timeout") return "timeout";
  if (turn.kind === "stalled") return "stalled";
  if (turn.kind === "interrupted") return "budget";
  if (turn.kind !== "idle") return "failed";
  return progressed ? "progress" : "no-progress";
};

const errorOf = (turn: TurnResult): string | undefined => {
  switch (turn.kind) {
    case "error":
      return turn.message;
    case "server-exited":
      return "opencode exited during the iteration";
    case "timeout":
      return "the iteration timed out";
    case "stalled":
      return `stalled: no activity from opencode for ${Math.round(turn.idleMs / 1000)}s`;
    default:
      return undefined;
  }
};

/**
 * A local run's opencode: in a sandbox of its own under the run's directory.
 * `check` says, after each iteration, whether the agent tampered with git's
 * metadata in a way the sandbox cannot prevent.
 */
function privateServerStarter(opts: LoopOptions, runDir: string, emit: (e: LoopEventInput) => void): { start: (repoDir: string) => Promise<OpencodeServer>; check: () => string | undefined; close: () => void } {
  const refusals = refusalReporter((r) => emit({ type: "sandbox.refused", ...r }));
  let check: () => string | undefined = () => undefined;
  return {
    start: async (repoDir) => {
      const local = await localSandboxPlan({
        repoDir,
        runDir,
        name: `run-${opts.run?.id ?? `${process.pid}-${Date.now()}`}`,
        model: opts.model,
        sandbox: opts.sandbox ?? { enabled: true },
        onRefused: refusals.refused,
      });
      check = local.checkGit;
      return startOpencodeServer({ sandbox: local.plan, env: local.env, logFile: join(runDir, "opencode.log") });
    },
    check: () => check(),
    close: refusals.flush,
  };
}

const DEFAULT_STALL_MS = 5 * 60_000;

/**
 * The task dir inside its repository (opts.repoDir, else the one around it)
 * and its validated PRD. Every file of the task is read and written only
 * inside that repository: a symlink leading out is a ContainmentError.
 */
export async function openTask(taskDir: string, repoDir?: string): Promise<{ repoDir: string; rel: string; taskDir: string; prdFile: string; prd: Prd }> {
  const { root, rel } = await locateTaskDir(taskDir, repoDir);
  const prdFile = join(root, rel, "prd.json");
  return { repoDir: root, rel, taskDir: join(root, rel), prdFile, prd: loadPrd(prdFile, root) };
}

/**
 * The Ralph loop: one fresh opencode session per iteration until every story
 * passes (read from the file, never from the model's words), the budget is
 * spent, failures pile up, or the signal stops it. opencode never outlives it.
 */
export async function runLoop(opts: LoopOptions): Promise<LoopResult> {
  const t0 = Date.now();
  const emit = (e: Parameters<typeof stamp>[0]) => opts.onEvent?.(stamp(e));
  const maxFailures = opts.maxConsecutiveFailures ?? 3;
  const backoffBase = opts.backoffBaseMs ?? 2000;
  const budget = opts.budget ?? {};

  const task = await openTask(opts.taskDir, opts.repoDir);
  const { repoDir, taskDir, prdFile } = task;
  const progressFile = join(taskDir, "progress.txt");
  let prd = task.prd;
  if (!opts.head) await ensureBranch(repoDir, prd.branchName);
  const head = opts.head ?? (() => headCommit(repoDir));
  const template = loadTemplate(taskDir, repoDir);
  emit({ type: "run.started", ...(opts.run ? { runId: opts.run.id } : {}), taskDir, branch: prd.branchName, ...storyCounts(prd), maxIterations: opts.maxIterations, budget });

  const local = opts.startServer ? undefined : privateServerStarter(opts, opts.run?.dir ?? homeDir("runs", `${Date.now()}-${process.pid}`), emit);
  const startServer = opts.startServer ?? local!.start;
  let server: OpencodeServer | undefined = opts.existingServer;
  const ensureServer = async (): Promise<OpencodeServer> => {
    if (server?.alive()) return server;
    if (server) emit({ type: "opencode.restarted", reason: `opencode (pid ${server.pid}) exited` });
    server = await startServer(repoDir);
    emit({ type: "opencode.started", socket: server.socket, pid: server.pid, sandbox: server.sandbox });
    return server;
  };

  let iteration = opts.startIteration ?? 0;
  let failures = 0;
  let usage = opts.startUsage ?? emptyUsage();
  let cutShort = false;
  const finish = async (status: LoopStatus, reason?: string): Promise<LoopResult> => {
    await server?.stop().catch(() => undefined);
    local?.close();
    const result = { status, iterations: iteration, ...storyCounts(prd), durationMs: Date.now() - t0, ...(reason ? { reason } : {}), usage };
    emit({ type: "run.ended", ...result });
    return result;
  };

  try {
    while (!allPass(prd)) {
      if (opts.signal?.aborted) return await finish("stopped", "stopped by request");
      const hit = budgetHit(usage, budget);
      if (hit) {
        emit({ type: "loop.budget", ...hit, duringIteration: cutShort });
        return await finish("budget", describeBudgetHit(hit));
      }
      if (iteration >= opts.maxIterations) return await finish("exhausted", `${opts.maxIterations} iterations spent`);
      iteration++;
      const story = nextStory(prd);
      const before = storyCounts(prd).passed;
      const headBefore = await head();
      const started = Date.now();
      let turn: TurnResult;
      const overBudget = new AbortController();
      const spentBefore = usage;
      let hitsBefore = server?.limitHits();
      try {
        const srv = await ensureServer();
        hitsBefore = srv.limitHits();
        emit({ type: "iteration.started", iteration, storyId: story?.id, storyTitle: story?.title });
        const guidance = opts.takeGuidance?.(iteration) ?? [];
        for (const text of guidance) emit({ type: "loop.guidance", iteration, text });
        const prompt = buildPrompt(template, { taskDir, prdFile, progressFile, repoDir, prd, guidance });
        turn = await runTurn(srv, {
          prompt,
          model: opts.model,
          timeoutMs: opts.iterationTimeoutMs,
          stallTimeoutMs: opts.stallTimeoutMs ?? DEFAULT_STALL_MS,
          signal: opts.signal,
          interrupt: overBudget.signal,
          permissionPolicy: opts.permissionPolicy,
          accounting: opts.accounting,
          onTool: (t) => emit({ type: "tool", iteration, ...t }),
          onAsked: (a) => emit({ type: "loop.asked", iteration, ...a }),
          onSession: (sessionId) => {
            opts.onSession?.(sessionId);
            emit({ type: "iteration.session", iteration, sessionId });
          },
          onUsage: (u) => {
            if (!overBudget.signal.aborted && budgetHit(addUsage(spentBefore, u), budget)) overBudget.abort();
          },
        });
      } catch (err) {
        if (opts.signal?.aborted) return await finish("stopped", "stopped by request");
        if (err instanceof ContainmentError) return await finish("failed", err.message);
        turn = { kind: "error", message: (err as Error).message, usage: emptyUsage() };
      }
      usage = addUsage(usage, turn.usage);
      if (turn.kind === "aborted") return await finish("stopped", "stopped by request");
      const tampered = local?.check();
      if (tampered) return await finish("failed", tampered);
      // A limit the sandbox ran into fails the iteration, whatever the agent made of it.
      const hits = server?.limitHits();
      for (const limit of ["memory", "pids"] as const) {
        if (!hits || !hitsBefore || hits[limit] <= hitsBefore[limit]) continue;
        const max = limit === "memory" ? server!.sandbox.limits?.memoryMb ?? 0 : server!.sandbox.limits?.pids ?? 0;
        emit({ type: "loop.limit", iteration, limit, max });
        turn = { kind: "error", message: limit === "memory" ? `ran out of its memory limit (${max} MB)` : `ran into its limit of ${max} processes`, usage: turn.usage };
      }
      if (turn.kind === "stalled") emit({ type: "loop.stalled", iteration, idleSeconds: Math.round(turn.idleMs / 1000) });
      cutShort = turn.kind === "interrupted";
      const committed = (await head()) !== headBefore;
      const durationMs = Date.now() - started;
      const error = errorOf(turn);
      let outcome: IterationOutcome;
      let counts: ReturnType<typeof storyCounts>;
      try {
        // The agent may have broken the PRD, or swapped it or the log for a symlink leading out.
        prd = loadPrd(prdFile, repoDir);
        counts = storyCounts(prd);
        outcome = outcomeOf(turn, counts.passed > before);
        appendProgressRecord(repoDir, progressFile, { iteration, storyId: story?.id, outcome, durationMs, ...counts, error });
      } catch (err) {
        if (err instanceof ContainmentError || err instanceof PrdError) return await finish("failed", `after iteration ${iteration}: ${err.message}`);
        throw err;
      }
      emit({ type: "iteration.ended", iteration, outcome, durationMs, storyId: story?.id, ...counts, committed, ...(error ? { error } : {}), usage: turn.usage, totalUsage: usage });
      await opts.afterIteration?.({ iteration, committed, outcome });

      if (outcome === "failed" || outcome === "timeout" || outcome === "stalled") {
        failures++;
        if (failures >= maxFailures) return await finish("failed", `${failures} consecutive failed iterations; last: ${error}`);
        await sleep(Math.min(60_000, backoffBase * 2 ** (failures - 1)), opts.signal).catch(() => undefined);
      } else {
        failures = 0;
      }
    }
    return await finish("completed");
  } catch (err) {
    await server?.stop().catch(() => undefined);
    throw err;
  }
}
