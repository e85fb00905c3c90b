import { sleep } from "../util/wait.js";
import type { ControlClient } from "./connection.js";

export interface DaemonEvent {
  seq: number;
  loopId: string;
  type: string;
  time: string;
  [k: string]: unknown;
}

const TERMINAL = new Set(["completed", "exhausted", "failed", "stopped"]);
export const isTerminal = (e: DaemonEvent): boolean => e.type === "loop.status" && TERMINAL.has(String(e.status));

/**
 * Streams a daemon's events from `after`, resuming from the last seq seen
 * whenever the connection drops, so nothing is missed. Returns the last seq
 * when `follow` is off and the backlog is drained, or when `stopWhen` holds.
 */
export async function streamEvents(
  client: ControlClient,
  opts: { loopId?: string; after?: number; follow: boolean; onEvent: (e: DaemonEvent) => void; stopWhen?: (e: DaemonEvent) => boolean; signal?: AbortSignal },
): Promise<number> {
  let last = opts.after ?? 0;
  let failures = 0;
  for (;;) {
    if (opts.signal?.aborted) return last;
    const q = new URLSearchParams({ after: String(last), ...(opts.loopId ? { loop: opts.loopId } : {}) });
    const ctrl = new AbortController();
    const onAbort = () => ctrl.abort();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const res = await fetch(`${client.url}/events?${q}`, { signal: ctrl.signal, headers: last ? { "last-event-id": String(last) } : {} });
      if (!res.ok) {
        const body = (await res.json().catch(() => ({}))) as { error?: { message?: string } };
        throw Object.assign(new Error(body.error?.message ?? `HTTP ${res.status}`), { fatal: res.status < 500 });
      }
      failures = 0;
      const reader = res.body!.getReader();
      let buf = "";
      let idle: NodeJS.Timeout | undefined;
      const resetIdle = () => {
        clearTimeout(idle);
        // Without follow, a quiet second after the backlog means it is drained.
        if (!opts.follow) idle = setTimeout(() => ctrl.abort(), 1000);
      };
      resetIdle();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += Buffer.from(value).toString("utf8");
        let sep: number;
        while ((sep = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, sep);
          buf = buf.slice(sep + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
          if (!data) continue;
          const e = JSON.parse(data) as DaemonEvent;
          if (typeof e.seq !== "number" || e.seq <= last) continue;
          last = e.seq;
          opts.onEvent(e);
          resetIdle();
          if (opts.stopWhen?.(e)) {
            clearTimeout(idle);
            ctrl.abort();
            return last;
          }
        }
      }
      clearTimeout(idle);
      if (!opts.follow) return last;
    } catch (err) {
      if ((err as { fatal?: boolean }).fatal) throw err;
      if (!opts.follow && ctrl.signal.aborted && !opts.signal?.aborted) return last;
      if (opts.signal?.aborted) return last;
      failures++;
      if (failures > 60) throw new Error(`lost the event stream and could not resume after ${failures} tries: ${(err as Error).message}`);
      // The proxy restarts itself; resume from the last seq once it answers.
      await sleep(Math.min(2000, 100 * failures));
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
    }
  }
}
