import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { streamSSE } from "hono/streaming";
import { loadavg } from "node:os";
import type { z } from "zod";
import { opencodeVersion } from "../opencode/binary.js";
import { VERSION } from "../version.js";
import { ZITI_VERSION } from "../ziti/binary.js";
import { summaryOf, type LoopManager } from "./manager.js";
import type { Notifier } from "./notify.js";
import { RpcError, SayRequestSchema, StartLoopRequestSchema, httpStatusFor, type ErrorCode } from "./rpc.js";
import type { Store, StoredEvent } from "./store.js";

const MAX_BODY = 64 * 1024;

export interface Health {
  name: string;
  healthy: boolean;
  uptimeSeconds: number;
  loops: { active: number; total: number; max: number };
  load: number[];
  memory: { rssBytes: number };
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
      load: loadavg(),
      memory: { rssBytes: process.memoryUsage().rss },
      versions: { ralph: VERSION, node: process.version, ziti: ZITI_VERSION, opencode: await opencodeVersion() },
    }),
  );

  app.get("/models", async (c) => c.json(await manager.catalog()));

  app.get("/loops", (c) => c.json({ loops: manager.list() }));
  app.get("/loops/:id", (c) => c.json({ loop: summaryOf(manager.get(c.req.param("id"))) }));

  app.post("/loops", limitBody, async (c) => c.json({ loop: await manager.start(await bodyOf(c, StartLoopRequestSchema)) }, 201));

  app.post("/loops/:id/stop", async (c) => c.json({ loop: await manager.stop(c.req.param("id")) }));

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

  /** What `ralph attach` needs: the loop's Ziti service and its opencode password. */
  app.get("/loops/:id/attach", (c) => {
    const row = manager.get(c.req.param("id"));
    if (!row.service || !row.opencodePassword || !["starting", "running"].includes(row.status)) {
      return fail(c, "conflict", `loop ${row.id} has no opencode to attach to (it is ${row.status})`);
    }
    return c.json({ service: row.service, username: "opencode", password: row.opencodePassword });
  });

  /**
   * Events as SSE, each with `id: seq`. A client resumes with Last-Event-ID
   * or ?after=SEQ and gets everything it missed that is still retained, then
   * a `caught-up` event, then live events.
   */
  app.get("/events", (c) => {
    const loopId = c.req.query("loop");
    if (loopId) manager.get(loopId);
    const afterRaw = c.req.header("last-event-id") ?? c.req.query("after") ?? "0";
    const after = Number(afterRaw);
    if (!Number.isInteger(after) || after < 0) return fail(c, "invalid_request", `after must be a whole number, not "${afterRaw}"`);
    return streamSSE(c, async (stream) => {
      let last = after;
      const queue: StoredEvent[] = [];
      let wake: (() => void) | undefined;
      const onEvent = (e: StoredEvent) => {
        if (!loopId || e.loopId === loopId) {
          queue.push(e);
          wake?.();
        }
      };
      manager.on("event", onEvent);
      stream.onAbort(() => {
        manager.off("event", onEvent);
        wake?.();
      });
      if (after > 0 && after < store.oldestSeq() - 1) {
        await stream.writeSSE({ event: "gap", data: JSON.stringify({ message: `events after ${after} are no longer retained; oldest is ${store.oldestSeq()}` }) });
      }
      const send = async (e: StoredEvent) => {
        if (e.seq <= last) return;
        last = e.seq;
        await stream.writeSSE({ id: String(e.seq), data: JSON.stringify({ seq: e.seq, loopId: e.loopId, ...e.event }) });
      };
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
    });
  });

  return app;
}
