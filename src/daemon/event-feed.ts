import { ApiError } from "../contract/errors.js";
import type { Store, StoredEvent } from "./store.js";

/** What a follower of GET /events is sent, in order: a gap notice, the backlog, caught-up, then live events and heartbeats. */
export type FeedItem = { kind: "gap"; message: string } | { kind: "event"; event: StoredEvent } | { kind: "caught-up"; seq: number } | { kind: "heartbeat" };

/** Live events until the returned function is called; throws when no more followers are allowed. */
export type Follow = (onEvent: (e: StoredEvent) => void) => () => void;

const HEARTBEAT_MS = 10_000;

/**
 * A stream position (`after` or Last-Event-ID): decimal digits only, and no
 * later than the newest event, after which a stream would never send one.
 */
export function checkPosition(position: { name: string; raw: string }, newest: number): number {
  const value = /^\d+$/.test(position.raw) ? Number(position.raw) : NaN;
  if (!(value <= newest)) {
    const shown = position.raw.length > 40 ? `${position.raw.slice(0, 40)}...` : position.raw;
    throw new ApiError("invalid_request", `${position.name} must be a whole number from 0 to ${newest} (the newest event), not ${JSON.stringify(shown)}`);
  }
  return value;
}

/**
 * One follower's feed. It starts following before it reads the backlog so
 * that nothing falls between the two, and it never sends an event twice.
 * Refusals (a bad position, the follower cap) are thrown here, before any
 * stream opens. `close` (also run when the items end) frees the follower
 * even if the items were never read.
 */
export function openEventFeed(
  store: Pick<Store, "newestSeq" | "oldestSeq" | "eventsAfter">,
  follow: Follow,
  opts: { loopId?: string; position: { name: string; raw: string }; signal: AbortSignal },
): { items: AsyncIterable<FeedItem>; close: () => void } {
  const after = checkPosition(opts.position, store.newestSeq());
  const queue: StoredEvent[] = [];
  let wake: (() => void) | undefined;
  const unfollow = follow((e) => {
    if (!opts.loopId || e.loopId === opts.loopId) {
      queue.push(e);
      wake?.();
    }
  });
  const onAbort = () => wake?.();
  opts.signal.addEventListener("abort", onAbort);
  const close = () => {
    unfollow();
    opts.signal.removeEventListener("abort", onAbort);
  };
  const items = (async function* (): AsyncGenerator<FeedItem> {
    let last = after;
    const fresh = (e: StoredEvent) => {
      if (e.seq <= last) return false;
      last = e.seq;
      return true;
    };
    try {
      if (after > 0 && after < store.oldestSeq() - 1) {
        yield { kind: "gap", message: `events after ${after} are no longer retained; oldest is ${store.oldestSeq()}` };
      }
      for (let batch = store.eventsAfter(last, opts.loopId); batch.length > 0; batch = store.eventsAfter(last, opts.loopId)) {
        for (const e of batch) if (fresh(e)) yield { kind: "event", event: e };
      }
      yield { kind: "caught-up", seq: last };
      while (!opts.signal.aborted) {
        while (queue.length > 0) {
          const e = queue.shift()!;
          if (fresh(e)) yield { kind: "event", event: e };
        }
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, HEARTBEAT_MS).unref();
        });
        wake = undefined;
        if (queue.length === 0 && !opts.signal.aborted) yield { kind: "heartbeat" };
      }
    } finally {
      close();
    }
  })();
  return { items, close };
}
