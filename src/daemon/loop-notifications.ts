import { formatUsage } from "../loop/usage.js";
import type { Notification, NotifyKind } from "./notify.js";
import type { LoopRow, StoredEvent } from "./store.js";

const ENDINGS: Partial<Record<string, NotifyKind>> = { completed: "completed", failed: "failed", exhausted: "exhausted", budget: "budget", stopped: "stopped" };

/** Why loops end when the daemon ends them as it stops ('ralphd stop --loops', shutdown: "stop-loops"). */
export const SHUTDOWN = "daemon shutdown";
/** How a loop that stopped itself, for want of a daemon, says so (the start of its reason). */
export const ORPHANED = "no ralphd for over";

/** What the owner hears about a loop event, if anything: its end, a stall, or a question nobody answered. */
export function notificationFor(daemon: string, row: LoopRow, { event }: StoredEvent): Notification | undefined {
  const details = {
    branch: row.branch,
    origin: row.origin,
    status: row.status,
    passed: row.passed,
    total: row.total,
    iterations: row.iteration,
    costUsd: row.usage.costUsd,
    tokens: row.usage.tokens,
    ...(row.reason ? { reason: row.reason } : {}),
  };
  const base = { daemon, loopId: row.id, time: event.time, details };
  const where = `${row.branch} on ${daemon}`;
  const progress = `${row.passed}/${row.total} stories pass after ${row.iteration} iteration(s), ${formatUsage(row.usage)}`;
  if (event.type === "loop.status") {
    // Nobody asked for these: the owner hears of them.
    const unasked = event.status === "stopped" && (event.reason === SHUTDOWN || event.reason?.startsWith(ORPHANED));
    const kind = unasked ? "shutdown" : ENDINGS[event.status];
    if (!kind) return undefined;
    return { ...base, kind, title: `Ralph loop ${row.id} ${event.status}`, message: `${where}: ${progress}${event.reason && kind !== "completed" ? `. ${event.reason}` : ""}` };
  }
  if (event.type === "loop.stalled") {
    return { ...base, kind: "stalled", title: `Ralph loop ${row.id} stalled`, message: `${where}: iteration ${event.iteration} had no activity for ${event.idleSeconds}s and was aborted` };
  }
  if (event.type === "loop.asked") {
    return { ...base, kind: "asked", title: `Ralph loop ${row.id} asked a ${event.kind}`, message: `${where}, iteration ${event.iteration}: ${event.text}\nAnswered: ${event.answer}` };
  }
  return undefined;
}
