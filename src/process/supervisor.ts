import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { dirname } from "node:path";
import { execa, type ResultPromise } from "execa";
import { withoutTokens } from "../util/tokens.js";

export { pidAlive } from "./alive.js";

export interface ChildExit {
  code: number | null;
  signal: string | null;
}

export interface SpawnOptions {
  /** Human name used in errors and logs ("opencode", "ziti quickstart"). */
  name: string;
  command: string;
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Output (stdout and stderr) is always drained, into this file. */
  logFile: string;
  /** Called for every output line, e.g. to spot a readiness message. */
  onLine?: (line: string) => void;
  /**
   * Strings that must never reach the log file (passwords passed on the
   * command line or echoed by the child). Replaced with "***".
   */
  redact?: string[];
  /**
   * For a child that must outlive this process (a background network): its
   * output goes straight to the log file instead of through pipes that would
   * close when we exit. onLine and redact do not apply.
   */
  outputToFileOnly?: boolean;
}

/**
 * A child process in its own process group, with its output drained to a log
 * file and its exit observed. Stopping signals the whole group, so helpers it
 * spawned go too.
 */
export class SupervisedProcess {
  readonly pid: number;
  readonly exited: Promise<ChildExit>;
  private exitInfo: ChildExit | undefined;
  private readonly child: ResultPromise;
  private readonly log: WriteStream;

  private constructor(readonly options: SpawnOptions) {
    mkdirSync(dirname(options.logFile), { recursive: true, mode: 0o700 });
    this.log = createWriteStream(options.logFile, { flags: "a", mode: 0o600 });
    // A shell redirect gives the child the log file itself, not a pipe through us.
    const [command, args] = options.outputToFileOnly
      ? ["/bin/sh", ["-c", 'log=$1; shift; exec "$@" >>"$log" 2>&1', "sh", options.logFile, options.command, ...options.args]]
      : [options.command, options.args];
    this.child = execa(command, args, {
      cwd: options.cwd,
      env: options.env,
      extendEnv: options.env === undefined,
      detached: true,
      stdin: "ignore",
      stdout: options.outputToFileOnly ? "ignore" : "pipe",
      stderr: options.outputToFileOnly ? "ignore" : "pipe",
      buffer: false,
      reject: false,
      cleanup: false,
      windowsHide: true,
    });
    if (this.child.pid === undefined) {
      throw new Error(`could not start ${options.name} (${options.command})`);
    }
    this.pid = this.child.pid;
    live.add(this);
    const drain = lineSplitter((line) => {
      this.log.write(this.redact(line) + "\n");
      options.onLine?.(line);
    });
    this.child.stdout?.on("data", drain);
    this.child.stderr?.on("data", drain);
    this.exited = this.child.then(
      (r) => this.recordExit({ code: r.exitCode ?? null, signal: r.signal ?? null }),
      (err: unknown) => this.recordExit({ code: null, signal: null, error: err }),
    );
  }

  static spawn(options: SpawnOptions): Promise<SupervisedProcess> {
    return new Promise((resolveSpawn, reject) => {
      let proc: SupervisedProcess;
      try {
        proc = new SupervisedProcess(options);
      } catch (err) {
        reject(err);
        return;
      }
      proc.child.once("spawn", () => resolveSpawn(proc));
      proc.child.once("error", (err: NodeJS.ErrnoException) => {
        live.delete(proc);
        reject(err.code === "ENOENT" ? new Error(`${options.name}: binary not found at ${options.command}; install it or set the path explicitly`) : err);
      });
    });
  }

  /** Lets this process exit while the child keeps running. */
  unref(): void {
    this.child.unref();
  }

  get exit(): ChildExit | undefined {
    return this.exitInfo;
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  /** SIGTERM to the process group, then SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<ChildExit> {
    if (this.exitInfo) return this.exitInfo;
    signalGroup(this.pid, "SIGTERM");
    const timer = setTimeout(() => signalGroup(this.pid, "SIGKILL"), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  describeExit(): string {
    const e = this.exitInfo;
    if (!e) return `${this.options.name} is running (pid ${this.pid})`;
    const how = e.signal ? `was killed by ${e.signal}` : `exited with code ${e.code}`;
    return `${this.options.name} (pid ${this.pid}) ${how}; see ${this.options.logFile}`;
  }

  private recordExit(e: ChildExit & { error?: unknown }): ChildExit {
    this.exitInfo = { code: e.code, signal: e.signal };
    live.delete(this);
    // Kill anything the child left behind in its group.
    signalGroup(this.pid, "SIGKILL");
    this.log.end();
    return this.exitInfo;
  }

  private redact(line: string): string {
    let out = withoutTokens(line);
    for (const secret of this.options.redact ?? []) {
      if (secret) out = out.split(secret).join("***");
    }
    return out;
  }
}

/** Sends a signal to a whole process group; a group that is gone is fine. */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    /* already gone */
  }
}

function lineSplitter(onLine: (line: string) => void): (chunk: Buffer) => void {
  let pending = "";
  return (chunk) => {
    pending += chunk.toString("utf8");
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      onLine(pending.slice(0, nl).replace(/\r$/, ""));
      pending = pending.slice(nl + 1);
    }
    if (pending.length > 64 * 1024) {
      onLine(pending);
      pending = "";
    }
  };
}

const live = new Set<SupervisedProcess>();

/**
 * Children must not outlive their parent: on exit (normal, signal or crash)
 * every still-running group is killed. Daemon code that wants a child to
 * survive its own restart detaches it from this registry with `release`.
 */
export function releaseFromParentExit(proc: SupervisedProcess): void {
  live.delete(proc);
  proc.unref();
}

process.once("exit", () => {
  for (const p of live) signalGroup(p.pid, "SIGKILL");
});
