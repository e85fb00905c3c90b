import { formatUsage } from "../loop/usage.js";
import type { Notification, NotifyKind } from "./notify.js";
import type { LoopRow, StoredEvent } from "./store.js";

const ENDINGS: Partial<Record<string, NotifyKind>> = { completed: "completed", failed: "failed", exhausted: "exhausted", budget: "budget", stopped: "stopped" };

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
    const kind = ENDINGS[event.status];
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
