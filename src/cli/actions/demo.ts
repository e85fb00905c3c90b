import { runRemoteDemo } from "../../demo/remote-demo.js";
import { LoopStatusSchema } from "../../loop/events.js";
import { describeDaemonEvent, exitCodeForStatus, summary } from "../describe.js";
import { ExitCode } from "../exit-codes.js";
import { printJson, style } from "../output.js";

export interface DemoFlags {
  model?: string;
  keepNetwork?: boolean;
  keepDaemon?: boolean;
  json?: boolean;
}

/** `ralph demo`: the main job end to end on this machine. */
export async function demo(o: DemoFlags): Promise<void> {
  const step = (s: string) => process.stderr.write(`${style.bold("==>")} ${s}\n`);
  const stop = new AbortController();
  let signals = 0;
  const onSignal = () => {
    // First: stop the remote loop and clean up. Second: leave now.
    if (++signals > 1) process.exit(ExitCode.Stopped);
    step("stopping the loop (again to leave at once)");
    stop.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    const r = await runRemoteDemo({
      model: o.model ?? (process.env.RALPH_MODEL || undefined),
      keepNetwork: o.keepNetwork,
      keepDaemon: o.keepDaemon,
      step,
      warn: (s) => step(style.yellow(s)),
      onEvent: (e) => {
        if (o.json) return printJson(e);
        const line = describeDaemonEvent(e);
        if (line) process.stdout.write(line + "\n");
      },
      signal: stop.signal,
    });
    const { loop } = r;
    // A loop that ended before it ran (a failed checkout) is "failed" too.
    const status = LoopStatusSchema.catch("failed").parse(loop.status);
    if (o.json) printJson({ type: "demo.result", loop, origin: r.origin, pushed: r.pushed.split("\n").filter(Boolean) });
    else {
      const durationMs = Date.parse(loop.endedAt ?? loop.updatedAt) - Date.parse(loop.createdAt);
      const result = { status, iterations: loop.iteration, passed: loop.passed, total: loop.total, durationMs, reason: loop.reason ?? undefined, usage: loop.usage };
      process.stdout.write(`\n${summary(result)}\npushed to ${r.origin} on ${loop.branch}:\n${r.pushed || "(nothing)"}\n`);
    }
    process.exitCode = exitCodeForStatus(status);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
