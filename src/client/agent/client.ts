import { spawn } from "node:child_process";
import { connect, type Socket } from "node:net";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { UnavailableError } from "../../util/errors.js";
import { PACKAGE_ROOT } from "../../version.js";
import { agentBuild, agentLogPath, agentSocketPath, removeStaleSockets, type AgentAnswer, type AgentRequest } from "./protocol.js";
import { pidAlive } from "../../process/alive.js";

type Ask = AgentRequest extends infer R ? (R extends AgentRequest ? Omit<R, "id"> : never) : never;

const GONE: AgentAnswer = { id: 0, ok: false, kind: "unavailable", message: "the client agent went away" };

/** `ralph agent run`, from the built CLI (tests run the sources, which cannot be started as they are). */
const AGENT_COMMAND = [join(PACKAGE_ROOT, "dist", "cli", "ralph.js"), "agent", "run"];
const START_TIMEOUT_MS = 10_000;

const connectOnce = (path: string) =>
  new Promise<Socket>((resolve, reject) => {
    const sock = connect(path);
    sock.once("connect", () => resolve(sock));
    sock.once("error", reject);
  });

/**
 * A command's connection to the client agent, started on first use. The
 * connection stays open while the command runs: the agent keeps the dialers
 * it opened for as long as that.
 */
export class AgentConnection {
  private nextId = 1;
  private readonly pending = new Map<number, (a: AgentAnswer) => void>();
  private waitingForClose = false;

  private constructor(private readonly sock: Socket) {
    createInterface({ input: sock }).on("line", (line) => {
      const a = JSON.parse(line) as AgentAnswer;
      this.pending.get(a.id)?.(a);
      this.pending.delete(a.id);
    });
    sock.on("close", () => {
      for (const settle of this.pending.values()) settle(GONE);
      this.pending.clear();
    });
    // A write to an agent that went away fails here; 'close' follows and answers what waits.
    sock.on("error", () => undefined);
    // The agent must not keep a finished command alive.
    sock.unref();
  }

  /**
   * Connects to the running agent; with `start`, starts one first when there
   * is none, or when the one running is of another build (ralph was upgraded
   * or rebuilt since it started).
   */
  static async connect(opts: { start: boolean }): Promise<AgentConnection | undefined> {
    const path = agentSocketPath();
    try {
      const running = new AgentConnection(await connectOnce(path));
      if (!opts.start) return running;
      const hello = await running.ask({ op: "hello" });
      if (hello.ok && hello.build === agentBuild()) return running;
      const gone = running.closed();
      await running.ask({ op: "stop" });
      await gone;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (!opts.start || (code !== "ENOENT" && code !== "ECONNREFUSED")) {
        if (!opts.start) return undefined;
        throw new UnavailableError(`cannot reach the client agent at ${path}: ${(err as Error).message}`);
      }
    }
    // Detached and in its own session: it outlives this command by design, and exits once idle.
    spawn(process.execPath, AGENT_COMMAND, { detached: true, stdio: "ignore", env: process.env }).unref();
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      try {
        return new AgentConnection(await connectOnce(path));
      } catch (err) {
        if (Date.now() > deadline) throw new UnavailableError(`the client agent did not start within ${START_TIMEOUT_MS / 1000} s (${(err as Error).message}): see ${agentLogPath()}, or set RALPH_AGENT=off`);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  /** False once the agent has gone (stopped, killed, replaced): a new connection is needed. */
  get alive(): boolean {
    return !this.sock.destroyed;
  }

  ask(req: Ask): Promise<AgentAnswer> {
    // Nothing will ever answer on a closed connection: say so at once rather than wait for ever.
    if (!this.alive) return Promise.resolve(GONE);
    const id = this.nextId++;
    this.sock.ref();
    return new Promise<AgentAnswer>((resolve) => {
      this.pending.set(id, resolve);
      this.sock.write(JSON.stringify({ ...req, id }) + "\n");
    }).finally(() => {
      if (this.pending.size === 0 && !this.waitingForClose) this.sock.unref();
    });
  }

  close(): void {
    this.sock.end();
  }

  /** Resolves when the agent has gone (its connection closed). */
  closed(): Promise<void> {
    this.waitingForClose = true;
    this.sock.ref();
    return new Promise((resolve) => (this.sock.destroyed ? resolve() : this.sock.once("close", () => resolve())));
  }
}

/** Stops this RALPH_HOME's agent and its dialers, if one runs (true if one did), and clears what a killed one left. */
export async function stopAgent(): Promise<boolean> {
  const agent = await AgentConnection.connect({ start: false });
  if (agent) {
    const gone = agent.closed();
    await agent.ask({ op: "stop" });
    await gone;
  }
  removeStaleSockets(pidAlive);
  return agent !== undefined;
}
