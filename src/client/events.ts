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
 * when `follow` is off and the daemon says the backlog is drained, or when
 * `stopWhen` holds.
 */
export async function streamEvents(
  client: ControlClient,
  opts: {
    loopId?: string;
    after?: number;
    follow: boolean;
    onEvent: (e: DaemonEvent) => void;
    /** Events older than the daemon keeps were asked for and are lost. */
    onGap?: (message: string) => void;
    stopWhen?: (e: DaemonEvent) => boolean;
    signal?: AbortSignal;
  },
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
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += Buffer.from(value).toString("utf8");
        let sep: number;
        while ((sep = buf.indexOf("\n\n")) >= 0) {
          const lines = buf.slice(0, sep).split("\n");
          buf = buf.slice(sep + 2);
          const field = (name: string) => lines.filter((l) => l.startsWith(`${name}: `)).map((l) => l.slice(name.length + 2)).join("\n");
          if (field("event") === "caught-up" && !opts.follow) {
            ctrl.abort();
            return last;
          }
          const data = field("data");
          if (!data) continue;
          if (field("event") === "gap") {
            opts.onGap?.((JSON.parse(data) as { message: string }).message);
            continue;
          }
          const e = JSON.parse(data) as DaemonEvent;
          if (typeof e.seq !== "number" || e.seq <= last) continue;
          last = e.seq;
          opts.onEvent(e);
          if (opts.stopWhen?.(e)) {
            ctrl.abort();
            return last;
          }
        }
      }
      if (!opts.follow) return last;
    } catch (err) {
      if ((err as { fatal?: boolean }).fatal) throw err;
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
