// Notification delivery: a loop's outcome goes to webhook and ntfy targets in
// the background. Delivery never blocks or breaks a loop: notify() only queues,
// every target has its own bounded queue, and failures end as one log line
// with the target's secrets redacted.
import pRetry, { AbortError } from "p-retry";
import { z } from "zod";
import type { DeliveryResult } from "../contract/schemas.js";

export const NotifyKindSchema = z.enum(["completed", "failed", "exhausted", "budget", "stalled", "asked", "stopped", "shutdown", "test"]);
export type NotifyKind = z.infer<typeof NotifyKindSchema>;
/**
 * Kinds a target gets when its config names none. ("stopped": the owner did
 * it; "shutdown": the daemon ended the loop as it stopped, or the loop
 * stopped itself without a daemon; "test" always goes to every target.)
 */
export const DEFAULT_NOTIFY_KINDS: NotifyKind[] = ["completed", "failed", "exhausted", "budget", "stalled", "asked", "shutdown"];

const httpUrl = z.url({ protocol: /^https?$/, error: "an http:// or https:// URL" });
const name = z.string().min(1).max(64).optional();
const events = z.array(NotifyKindSchema).min(1).optional();
// Refused at load time rather than failing (and possibly echoing the value) on every delivery.
const headerName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, "a valid HTTP header name");
const headerValue = z.string().regex(/^[\t\x20-\x7e]*$/, "printable ASCII");

export const NotifyTargetSchema = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("webhook"), name, url: httpUrl, headers: z.record(headerName, headerValue).optional(), events }),
  z.strictObject({
    kind: z.literal("ntfy"),
    name,
    /** Server URL including the topic path, e.g. https://ntfy.example.com/ralph. */
    url: httpUrl,
    /** Sent as Authorization: Bearer TOKEN. */
    token: z.string().regex(/^[\x21-\x7e]+$/, "printable ASCII without spaces").optional(),
    events,
  }),
]);
export type NotifyTarget = z.infer<typeof NotifyTargetSchema>;

export interface Notification {
  kind: NotifyKind;
  /** Daemon name. */
  daemon: string;
  /** "" for a test message. */
  loopId: string;
  title: string;
  message: string;
  /** ISO time of the event. */
  time: string;
  /** branch, origin, passed, total, iterations, cost, tokens, reason ... (JSON values) */
  details: Record<string, unknown>;
}


export interface NotifierOptions {
  retries?: number;
  minRetryDelayMs?: number;
  maxRetryDelayMs?: number;
  timeoutMs?: number;
  maxQueue?: number;
}

const NTFY_PRIORITY: Record<NotifyKind, number> = {
  completed: 3, failed: 4, exhausted: 4, budget: 4, stalled: 4, asked: 4, stopped: 2, shutdown: 4, test: 3,
};
const NTFY_TAG: Record<NotifyKind, string> = {
  completed: "white_check_mark", failed: "x", exhausted: "warning", budget: "moneybag",
  stalled: "hourglass", asked: "question", stopped: "stop_sign", shutdown: "stop_sign", test: "bell",
};

/**
 * A target's display name for logs and results: its `name`, else its kind and
 * origin. Never the path: webhook paths and ntfy topics often are the secret.
 */
export function targetLabel(t: NotifyTarget): string {
  if (t.name) return t.name;
  const u = new URL(t.url);
  return `${t.kind} ${u.protocol}//${u.host}`;
}

/** Removes secrets from a text: userinfo and query values of any URL in it, and any of the given secret strings. */
export function redact(text: string, secrets: string[]): string {
  let out = text.replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>]+/gi, (url) =>
    url.replace(/^([^:]+:\/\/)[^/?#@]*@/, "$1***@").replace(/([?&][^=&#]*=)[^&#]*/g, "$1***"),
  );
  // Longest first, so a secret that contains another is removed whole.
  const all = secrets.flatMap((s) => [s, encodeURIComponent(s)]).filter((s) => s.length > 0);
  for (const s of [...new Set(all)].sort((a, b) => b.length - a.length)) out = out.replaceAll(s, "***");
  return out;
}

const decode = (s: string) => {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
};

/** Everything of a target that must never reach a log line. */
function targetSecrets(t: NotifyTarget): string[] {
  const u = new URL(t.url);
  // Query and header values shorter than 4 characters (a flag like "1") are not
  // secrets and would garble every line ("HTTP 5***3").
  const values = [...u.searchParams.values(), ...(t.kind === "webhook" ? Object.values(t.headers ?? {}) : [])];
  const secrets = [...values.filter((v) => v.trim().length >= 4), decode(u.password), u.password];
  if (t.kind === "ntfy" && t.token) secrets.push(t.token);
  return secrets;
}

/** Header values must be bytes HTTP allows; keep it simple rather than RFC 2047. */
const asciiHeader = (s: string) => s.replace(/[^\x20-\x7e]/g, "?");

/** The fetch() arguments for one notification; userinfo in the URL becomes Basic auth, as fetch refuses it. */
function request(t: NotifyTarget, n: Notification): { url: string; init: RequestInit } {
  const u = new URL(t.url);
  const headers = new Headers({ "user-agent": "ralph-remote" });
  if (u.username || u.password) {
    const basic = `${decode(u.username)}:${decode(u.password)}`;
    headers.set("authorization", `Basic ${Buffer.from(basic).toString("base64")}`);
    u.username = u.password = "";
  }
  let body: string;
  if (t.kind === "webhook") {
    headers.set("content-type", "application/json");
    for (const [k, v] of Object.entries(t.headers ?? {})) headers.set(k, v);
    body = JSON.stringify({ kind: n.kind, daemon: n.daemon, loopId: n.loopId, title: n.title, message: n.message, time: n.time, ...n.details });
  } else {
    headers.set("content-type", "text/plain; charset=utf-8");
    headers.set("title", asciiHeader(n.title));
    headers.set("priority", String(NTFY_PRIORITY[n.kind]));
    headers.set("tags", NTFY_TAG[n.kind]);
    if (t.token) headers.set("authorization", `Bearer ${t.token}`);
    body = n.message;
  }
  return { url: u.href, init: { method: "POST", headers, body } };
}

function describe(err: unknown, timeoutMs: number): string {
  if (!(err instanceof Error)) return String(err);
  if (err.name === "TimeoutError") return `timed out after ${timeoutMs} ms`;
  // undici says only "fetch failed"; the cause has the useful part (ECONNREFUSED, ENOTFOUND ...).
  const cause = err.cause instanceof Error ? err.cause.message : "";
  return cause ? `${err.message}: ${cause}` : err.message;
}

interface Target {
  target: NotifyTarget;
  label: string;
  secrets: string[];
  kinds: Set<NotifyKind>;
  queue: Notification[];
  busy: boolean;
  /** Its last delivery failed after every retry: later ones get one attempt each until one gets through. */
  failing: boolean;
}

export class Notifier {
  private readonly targets: Target[];
  private readonly opts: Required<NotifierOptions>;
  private readonly stop = new AbortController();
  private closed = false;
  private testsInFlight = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(targets: NotifyTarget[], private readonly log: (line: string) => void, opts: NotifierOptions = {}) {
    // A few seconds an attempt: a target that takes a connection and never answers holds nothing up for long.
    this.opts = { retries: 4, minRetryDelayMs: 1000, maxRetryDelayMs: 30_000, timeoutMs: 3000, maxQueue: 100, ...opts };
    this.targets = targets.map((target) => ({
      target,
      label: targetLabel(target),
      secrets: targetSecrets(target),
      kinds: new Set(target.events ?? DEFAULT_NOTIFY_KINDS),
      queue: [],
      busy: false,
      failing: false,
    }));
  }

  /** Queues delivery to every target whose kinds include n.kind; returns at once and never throws. */
  notify(n: Notification): void {
    if (this.closed) return;
    try {
      for (const t of this.targets) {
        if (n.kind !== "test" && !t.kinds.has(n.kind)) continue;
        t.queue.push(n);
        if (t.queue.length > this.opts.maxQueue) {
          const old = t.queue.shift()!;
          this.say(t, `queue full (${this.opts.maxQueue}), dropped the oldest: "${old.kind}" for loop ${old.loopId || "-"}`);
        }
        this.pump(t);
      }
    } catch (err) {
      this.safeLog(`notify: ${String(err)}`);
    }
  }

  /** Sends n to every target now (no kind filter), one attempt each, so the whole test takes one attempt's time at most; resolves with one result per target. */
  async test(n: Notification): Promise<DeliveryResult[]> {
    this.testsInFlight++;
    try {
      return await Promise.all(this.targets.map((t) => this.deliver(t, n, 0)));
    } finally {
      this.testsInFlight--;
      this.settle();
    }
  }

  /** Resolves when every queue is empty and nothing is in flight (tests, shutdown). */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops accepting; waits up to `graceMs` (default 5000) for queued deliveries, then drops the rest (logging how many). */
  async close(graceMs = 5000): Promise<void> {
    this.closed = true;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      this.idle().then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), graceMs))),
    ]);
    clearTimeout(timer);
    if (!timedOut) return;
    let dropped = 0;
    for (const t of this.targets) {
      dropped += t.queue.length + (t.busy ? 1 : 0);
      t.queue.length = 0;
    }
    this.stop.abort(); // ends in-flight attempts and backoff waits at once
    this.safeLog(`notify: closed after ${graceMs} ms, dropped ${dropped} undelivered notification(s)`);
    await this.idle();
  }

  private isIdle(): boolean {
    return this.testsInFlight === 0 && this.targets.every((t) => !t.busy && t.queue.length === 0);
  }

  private settle(): void {
    if (!this.isIdle()) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** Runs a target's queue in order, one notification at a time, unless it already runs. */
  private pump(t: Target): void {
    if (t.busy) return;
    t.busy = true;
    void (async () => {
      try {
        await null; // return from notify() before any request work (the first fetch() loads undici, ~40 ms)
        for (let n = t.queue.shift(); n; n = t.queue.shift()) {
          const r = await this.deliver(t, n, t.failing ? 0 : this.opts.retries);
          t.failing = !r.ok;
        }
      } finally {
        t.busy = false;
        this.settle();
      }
    })();
  }

  /** Sends one notification with retries; resolves (never rejects) with the outcome and logs a final failure. */
  private async deliver(t: Target, n: Notification, retries: number): Promise<DeliveryResult> {
    const { timeoutMs } = this.opts;
    let attempts = 0;
    try {
      const { url, init } = request(t.target, n);
      await pRetry(
        async () => {
          attempts++;
          let res: Response;
          try {
            res = await fetch(url, { ...init, signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), this.stop.signal]) });
          } catch (err) {
            if (this.stop.signal.aborted) throw new AbortError("notifier closed");
            // A plain Error: p-retry would not retry a TypeError it does not know as a network error.
            throw new Error(describe(err, timeoutMs));
          }
          await res.body?.cancel().catch(() => {}); // free the connection; the answer's body is not used
          if (res.ok) return;
          const err = new Error(`HTTP ${res.status}`);
          // A client error will not go away on its own; a timeout or rate limit may.
          throw res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429 ? new AbortError(err) : err;
        },
        {
          retries,
          minTimeout: this.opts.minRetryDelayMs,
          maxTimeout: this.opts.maxRetryDelayMs,
          signal: this.stop.signal,
          unref: true,
        },
      );
      return { target: t.label, ok: true, attempts };
    } catch (err) {
      const reason = describe(err, timeoutMs);
      if (!this.stop.signal.aborted) {
        this.say(t, `"${n.kind}" for loop ${n.loopId || "-"} failed after ${attempts} attempt(s): ${reason}`);
      }
      return { target: t.label, ok: false, error: redact(reason, t.secrets), attempts };
    }
  }

  private say(t: Target, text: string): void {
    this.safeLog(redact(`notify ${t.label}: ${text}`, t.secrets));
  }

  private safeLog(line: string): void {
    try {
      this.log(line);
    } catch {
      // a broken logger must not break delivery
    }
  }
}
