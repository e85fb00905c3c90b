import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { streamSSE } from "hono/streaming";
import type { z } from "zod";
import { ApiError, ERROR_STATUS, type ErrorCode } from "../contract/errors.js";
import { routes } from "../contract/routes.js";
import type { LoopManager } from "./manager.js";
import { summaryOf } from "./manager.js";

const MAX_BODY = 64 * 1024;

const fail = (c: Context, code: ErrorCode, message: string) => c.json({ error: { code, message } }, ERROR_STATUS[code]);

/** The first problem of a refused request, with where it is. */
const firstIssue = (error: z.ZodError, where: string) => {
  const issue = error.issues[0]!;
  return `${issue.path.join(".") || where}: ${issue.message}`;
};

/**
 * The control API: JSON over HTTP on 127.0.0.1, reached by clients only
 * through the daemon's Ziti control service. Each route is the contract's
 * (src/contract/routes.ts), validated on the way in; handlers only call the
 * manager. The returned app's type is what the client is typed from.
 */
export function controlApi(manager: LoopManager) {
  const app = new OpenAPIHono({
    defaultHook: (result, c) => {
      if (!result.success) return fail(c, "invalid_request", firstIssue(result.error, result.target === "json" ? "body" : result.target));
    },
  });

  app.onError((err, c) => {
    if (err instanceof ApiError) return fail(c, err.code, err.message);
    // Hono's JSON validator refuses a body it cannot parse.
    if (err instanceof HTTPException && err.status === 400) return fail(c, "invalid_request", "the body is not valid JSON");
    return fail(c, "internal", err.message);
  });
  app.notFound((c) => fail(c, "not_found", `no route ${c.req.method} ${c.req.path}`));
  app.use("*", bodyLimit({ maxSize: MAX_BODY, onError: (c) => fail(c, "too_large", `request body over ${MAX_BODY} bytes`) }));

  const api = app
    .openapi(routes.health, async (c) => c.json(await manager.health(), 200))
    .openapi(routes.models, async (c) => c.json(await manager.catalog(), 200))
    .openapi(routes.listLoops, (c) => c.json({ loops: manager.list() }, 200))
    .openapi(routes.getLoop, (c) => c.json({ loop: summaryOf(manager.get(c.req.valid("param").id)) }, 200))
    .openapi(routes.startLoop, async (c) => c.json({ loop: await manager.start(c.req.valid("json")) }, 201))
    .openapi(routes.stopLoop, async (c) => c.json({ loop: await manager.stop(c.req.valid("param").id) }, 200))
    .openapi(routes.removeLoop, async (c) => c.json(await manager.remove(c.req.valid("param").id), 200))
    .openapi(routes.prune, async (c) => c.json(await manager.prune(), 200))
    .openapi(routes.say, (c) => c.json(manager.say(c.req.valid("param").id, c.req.valid("json").text), 200))
    .openapi(routes.notifyTest, async (c) => c.json({ results: await manager.testNotifications() }, 200))
    .openapi(routes.attach, async (c) => c.json(await manager.attachPoint(c.req.valid("param").id), 200))
    .openapi(routes.events, (c) => {
      const { loop, after } = c.req.valid("query");
      const header = c.req.header("last-event-id");
      const aborted = new AbortController();
      // Opened before the stream, so that a bad position or a follower past the cap gets a plain error.
      const feed = manager.events({
        loopId: loop,
        position: header !== undefined ? { name: "Last-Event-ID", raw: header } : { name: "after", raw: after ?? "0" },
        signal: aborted.signal,
      });
      return streamSSE(c, async (stream) => {
        stream.onAbort(() => aborted.abort());
        // A write to a vanished client throws: the feed's follower goes with it.
        try {
          for await (const item of feed.items) {
            if (item.kind === "event") {
              const { seq, loopId, event } = item.event;
              await stream.writeSSE({ id: String(seq), data: JSON.stringify({ seq, loopId, ...event }) });
            } else if (item.kind === "heartbeat") await stream.write(": heartbeat\n\n");
            else await stream.writeSSE({ event: item.kind, data: JSON.stringify(item.kind === "gap" ? { message: item.message } : { seq: item.seq }) });
          }
        } finally {
          aborted.abort();
          feed.close();
        }
      });
    });

  // A known path asked with a method it does not serve: 405 and the methods it does (HEAD with GET).
  const methodsOf = new Map<string, Set<string>>();
  for (const r of api.routes) if (r.method !== "ALL") methodsOf.set(r.path, (methodsOf.get(r.path) ?? new Set()).add(r.method));
  for (const [path, methods] of methodsOf) {
    const allow = [...methods, ...(methods.has("GET") ? ["HEAD"] : [])].sort().join(", ");
    api.all(path, (c) => {
      c.header("Allow", allow);
      return fail(c, "method_not_allowed", `${c.req.method} is not allowed on ${c.req.path}: it takes ${allow}`);
    });
  }
  return api;
}

/** The control API's type: the client (src/client/api.ts) is typed from it. */
export type ControlApp = ReturnType<typeof controlApi>;
