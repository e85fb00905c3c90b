import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { streamSSE } from "hono/streaming";
import { loadavg } from "node:os";
import type { z } from "zod";
import { opencodeVersion } from "../opencode/binary.js";
import { VERSION } from "../version.js";
import { ZITI_VERSION } from "../ziti/binary.js";
import { MAX_FOLLOWERS, summaryOf, type LoopManager } from "./manager.js";
import type { Notifier } from "./notify.js";
import { RpcError, SayRequestSchema, StartLoopRequestSchema, httpStatusFor, type ErrorCode } from "./rpc.js";
import type { Store, StoredEvent } from "./store.js";
import type { DiskUsage } from "./disk.js";

const MAX_BODY = 64 * 1024;

export interface Health {
  name: string;
  healthy: boolean;
  uptimeSeconds: number;
  loops: { active: number; total: number; max: number };
  /** Clients streaming events now, and how many may. */
  followers: { active: number; max: number };
  load: number[];
  memory: { rssBytes: number };
  /** The daemon's worktrees, mirrors and state on disk, as last measured; null before the first measurement. */
  disk: DiskUsage | null;
  versions: { ralph: string; node: string; ziti: string; opencode: string };
}

const fail = (c: Context, code: ErrorCode, message: string) => c.json({ error: { code, message } }, httpStatusFor[code]);

/** The JSON body checked against `schema`; the first problem is refused with its path. */
async function bodyOf<S extends z.ZodType>(c: Context, schema: S): Promise<z.infer<S>> {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    throw new RpcError("invalid_request", "the body is not valid JSON");
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new RpcError("invalid_request", `${issue.path.join(".") || "body"}: ${issue.message}`);
  }
  return parsed.data;
}

/**
 * A stream position (`after` or Last-Event-ID): decimal digits only, and no
 * later than the newest event, after which a stream would never send one.
 */
function positionOf(c: Context, newest: number): number {
  const header = c.req.header("last-event-id");
  const [name, raw] = header !== undefined ? ["Last-Event-ID", header] : ["after", c.req.query("after") ?? "0"];
  const position = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!(position <= newest)) {
    const shown = raw.length > 40 ? `${raw.slice(0, 40)}...` : raw;
    throw new RpcError("invalid_request", `${name} must be a whole number from 0 to ${newest} (the newest event), not ${JSON.stringify(shown)}`);
  }
  return position;
}

const limitBody = bodyLimit({ maxSize: MAX_BODY, onError: (c) => fail(c, "too_large", `request body over ${MAX_BODY} bytes`) });

/**
 * The control API: JSON over HTTP on 127.0.0.1, reached by clients only
 * through the daemon's Ziti control service.
 */
export function controlApi(deps: { manager: LoopManager; store: Store; notifier: Notifier; startedAt: number; maxConcurrentLoops: number; name: string }): Hono {
  const { manager, store } = deps;
  const app = new Hono();

  app.onError((err, c) => (err instanceof RpcError ? fail(c, err.code, err.message) : fail(c, "internal", err.message)));
  app.notFound((c) => fail(c, "not_found", `no route ${c.req.method} ${c.req.path}`));

  app.get("/health", async (c) =>
    c.json<Health>({
      name: deps.name,
      healthy: true,
      uptimeSeconds: Math.round((Date.now() - deps.startedAt) / 1000),
      loops: { active: manager.activeCount(), total: store.countLoops(), max: deps.maxConcurrentLoops },
      followers: { active: manager.followers(), max: MAX_FOLLOWERS },
      load: loadavg(),
      memory: { rssBytes: process.memoryUsage().rss },
      disk: manager.diskUsage(),
      versions: { ralph: VERSION, node: process.version, ziti: ZITI_VERSION, opencode: await opencodeVersion() },
    }),
  );

  app.get("/models", async (c) => c.json(await manager.catalog()));

  app.get("/loops", (c) => c.json({ loops: manager.list() }));
  app.get("/loops/:id", (c) => c.json({ loop: summaryOf(manager.get(c.req.param("id"))) }));

  app.post("/loops", limitBody, async (c) => c.json({ loop: await manager.start(await bodyOf(c, StartLoopRequestSchema)) }, 201));

  app.post("/loops/:id/stop", async (c) => c.json({ loop: await manager.stop(c.req.param("id")) }));

  /** Forgets a finished loop: its worktree, log, record and events. */
  app.delete("/loops/:id", async (c) => c.json(await manager.remove(c.req.param("id"))));

  /** Applies the retention period now. */
  app.post("/prune", async (c) => c.json(await manager.prune()));

  app.post("/loops/:id/say", limitBody, async (c) => c.json(manager.say(c.req.param("id"), (await bodyOf(c, SayRequestSchema)).text)));

  /** Sends a test message to every notification target now and says how each went. */
  app.post("/notify/test", async (c) =>
    c.json({
      results: await deps.notifier.test({
        kind: "test",
        daemon: deps.name,
        loopId: "",
        title: `Ralph Remote test from ${deps.name}`,
        message: `Notifications from ralphd ${deps.name} reach you.`,
        time: new Date().toISOString(),
        details: {},
      }),
    }),
  );

  /**
   * What `ralph attach` needs: the daemon's loops service, the loop's
   * terminator on it (answered once dialable) and its opencode password.
   */
  app.get("/loops/:id/attach", async (c) => {
    const { service, terminator, password } = await manager.attachPoint(c.req.param("id"));
    return c.json({ service, terminator, username: "opencode", password });
  });

  /**
   * Events as SSE, each with `id: seq`. A client resumes with Last-Event-ID
   * or ?after=SEQ and gets everything it missed that is still retained, then
   * a `caught-up` event, then live events.
   */
  app.get("/events", (c) => {
    const loopId = c.req.query("loop");
    if (loopId) manager.get(loopId);
    const after = positionOf(c, store.newestSeq());
    const queue: StoredEvent[] = [];
    let wake: (() => void) | undefined;
    // Before the stream opens, so that a follower past the cap gets a plain 503.
    const unfollow = manager.follow((e) => {
      if (!loopId || e.loopId === loopId) {
        queue.push(e);
        wake?.();
      }
    });
    return streamSSE(c, async (stream) => {
      stream.onAbort(() => {
        unfollow();
        wake?.();
      });
      let last = after;
      const send = async (e: StoredEvent) => {
        if (e.seq <= last) return;
        last = e.seq;
        await stream.writeSSE({ id: String(e.seq), data: JSON.stringify({ seq: e.seq, loopId: e.loopId, ...e.event }) });
      };
      // A write to a vanished client throws: its listener goes with it.
      try {
        if (after > 0 && after < store.oldestSeq() - 1) {
          await stream.writeSSE({ event: "gap", data: JSON.stringify({ message: `events after ${after} are no longer retained; oldest is ${store.oldestSeq()}` }) });
        }
        for (let batch = store.eventsAfter(last, loopId); batch.length > 0; batch = store.eventsAfter(last, loopId)) {
          for (const e of batch) await send(e);
        }
        // Tells a reader that only wants the backlog where it ends.
        await stream.writeSSE({ event: "caught-up", data: JSON.stringify({ seq: last }) });
        while (!stream.aborted) {
          while (queue.length > 0) await send(queue.shift()!);
          await new Promise<void>((r) => {
            wake = r;
            setTimeout(r, 10_000);
          });
          wake = undefined;
          if (queue.length === 0 && !stream.aborted) await stream.write(": heartbeat\n\n");
        }
      } finally {
        unfollow();
      }
    });
  });

  // A known path asked with a method it does not serve: 405 and the methods it does (HEAD with GET).
  const methodsOf = new Map<string, Set<string>>();
  for (const r of app.routes) if (r.method !== "ALL") methodsOf.set(r.path, (methodsOf.get(r.path) ?? new Set()).add(r.method));
  for (const [path, methods] of methodsOf) {
    const allow = [...methods, ...(methods.has("GET") ? ["HEAD"] : [])].sort().join(", ");
    app.all(path, (c) => {
      c.header("Allow", allow);
      return fail(c, "method_not_allowed", `${c.req.method} is not allowed on ${c.req.path}: it takes ${allow}`);
    });
  }

  return app;
}
