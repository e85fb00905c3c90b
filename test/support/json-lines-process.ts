import { spawn, type ChildProcess } from "node:child_process";
import { waitFor } from "../../src/util/wait.js";

/**
 * A child driven over stdin and reporting on stdout with one JSON object per
 * line (like tools/ziti/host), for tests that must run it under another
 * program (strace, a shell). Everything it printed is kept in `events`.
 */
export class JsonLinesProcess {
  readonly events: Record<string, unknown>[] = [];
  readonly lines: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  readonly child: ChildProcess;
  stderr = "";

  constructor(command: string, args: string[]) {
    this.child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
    this.child.stdin!.on("error", () => undefined);
    let pending = "";
    this.child.stdout!.on("data", (d: Buffer) => {
      pending += d.toString();
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        this.lines.push(line);
        try {
          this.events.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          /* not JSON */
        }
      }
    });
    this.child.stderr!.on("data", (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-20_000)));
    this.exited = new Promise((resolve) => this.child.once("exit", (code, signal) => resolve({ code, signal })));
  }

  send(command: Record<string, unknown>): void {
    this.child.stdin!.write(JSON.stringify(command) + "\n");
  }

  /** The first event (from the start) that matches; fails with what was seen. */
  async event(match: (e: Record<string, unknown>) => boolean, what: string, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    const died = new AbortController();
    void this.exited.then(() =>
      // A last look: the event may have come with the exit.
      setTimeout(() => died.abort(new Error(`exited before ${what}; it printed: ${this.lines.join(" | ")}; stderr: ${this.stderr.slice(-2000)}`)), 50),
    );
    return waitFor(() => this.events.find(match), { what: `${what} (seen: ${this.lines.join(" | ").slice(-1000)})`, timeoutMs, intervalMs: 20, signal: died.signal });
  }
}
