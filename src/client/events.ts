import { isTerminal, StreamEventSchema, type StreamEvent } from "../contract/events.js";
import { sseMessages } from "../util/sse.js";
import { sleep } from "../util/wait.js";
import { UnavailableError } from "../util/errors.js";
import { expectOk } from "./api.js";
import type { ControlClient } from "./connection.js";

export { isTerminal };

/**
 * Streams a daemon's events from `after`, resuming from the last seq seen
 * whenever the connection drops, so nothing is missed. Returns the last seq
 * when `follow` is off and the daemon says the backlog is drained, or when
 * `stopWhen` holds. Events of kinds this client does not know (a newer
 * daemon's) are skipped.
 */
export async function streamEvents(
  client: ControlClient,
  opts: {
    loopId?: string;
    after?: number;
    follow: boolean;
    onEvent: (e: StreamEvent) => void;
    /** Events older than the daemon keeps were asked for and are lost. */
    onGap?: (message: string) => void;
    stopWhen?: (e: StreamEvent) => boolean;
    signal?: AbortSignal;
  },
): Promise<number> {
  let last = opts.after ?? 0;
  let failures = 0;
  for (;;) {
    if (opts.signal?.aborted) return last;
    const ctrl = new AbortController();
    const onAbort = () => ctrl.abort();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const res = await client.api.events.$get(
        { query: { after: String(last), ...(opts.loopId ? { loop: opts.loopId } : {}) } },
        { init: { signal: ctrl.signal }, headers: last ? { "last-event-id": String(last) } : {} },
      );
      // A refusal (unknown loop, bad position) is final; the daemon being busy or away is not.
      if (!res.ok) await expectOk(client.remoteName, Promise.resolve(res)).catch((err: Error) => Promise.reject(Object.assign(err, { fatal: res.status < 500 })));
      failures = 0;
      for await (const m of sseMessages(res.body!)) {
        if (m.event === "caught-up" && !opts.follow) {
          ctrl.abort();
          return last;
        }
        if (m.event === "gap") {
          opts.onGap?.((JSON.parse(m.data) as { message: string }).message);
          continue;
        }
        if (m.event) continue;
        const parsed = StreamEventSchema.safeParse(JSON.parse(m.data));
        if (!parsed.success || parsed.data.seq <= last) continue;
        const e = parsed.data;
        last = e.seq;
        opts.onEvent(e);
        if (opts.stopWhen?.(e)) {
          ctrl.abort();
          return last;
        }
      }
      if (!opts.follow) return last;
    } catch (err) {
      if ((err as { fatal?: boolean }).fatal) throw err;
      if (opts.signal?.aborted) return last;
      failures++;
      if (failures > 60) throw new UnavailableError(`lost the event stream of remote "${client.remoteName}" and could not resume it after ${failures} tries: ${(err as Error).message}`);
      await sleep(Math.min(2000, 100 * failures));
      // Resume from the last seq once the daemon answers again.
      await client.reconnect().catch(() => undefined);
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
    }
  }
}
