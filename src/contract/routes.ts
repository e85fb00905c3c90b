import { createRoute } from "@hono/zod-openapi";
import { z } from "zod";
import { ERROR_STATUS, type ErrorCode } from "./errors.js";
import {
  AttachPointSchema,
  CatalogSchema,
  ErrorBodySchema,
  EventsQuerySchema,
  HealthSchema,
  LoopEnvelopeSchema,
  LoopListSchema,
  LoopParamsSchema,
  NotifyTestResultSchema,
  PruneResultSchema,
  SayRequestSchema,
  SayResponseSchema,
  StartLoopRequestSchema,
} from "./schemas.js";

/**
 * The control API, one entry per route: method, path, request validators and
 * every answer it may give. ralphd serves exactly these (src/daemon/api.ts)
 * and the client is typed from them (src/client/api.ts).
 */
const json = <S extends z.ZodType>(schema: S, description: string) => ({ content: { "application/json": { schema } }, description });

/** The error answers a route may give besides the ones every route may (internal, and too_large on a body). */
const failures = <C extends ErrorCode>(...codes: C[]) =>
  Object.fromEntries(["internal", ...codes].map((c) => [ERROR_STATUS[c as ErrorCode], json(ErrorBodySchema, c)])) as {
    [K in C | "internal" as (typeof ERROR_STATUS)[K]]: ReturnType<typeof json<typeof ErrorBodySchema>>;
  };

const ok = <S extends z.ZodType>(schema: S, description: string) => ({ 200: json(schema, description) });
const params = { params: LoopParamsSchema };
const body = <S extends z.ZodType>(schema: S) => ({ body: { content: { "application/json": { schema } }, required: true } });

export const routes = {
  health: createRoute({ method: "get", path: "/health", responses: { ...ok(HealthSchema, "the daemon's health"), ...failures() } }),
  models: createRoute({ method: "get", path: "/models", responses: { ...ok(CatalogSchema, "models and agents loops may use"), ...failures() } }),
  listLoops: createRoute({ method: "get", path: "/loops", responses: { ...ok(LoopListSchema, "every loop the daemon knows"), ...failures() } }),
  getLoop: createRoute({ method: "get", path: "/loops/{id}", request: params, responses: { ...ok(LoopEnvelopeSchema, "the loop"), ...failures("not_found") } }),
  startLoop: createRoute({
    method: "post",
    path: "/loops",
    request: body(StartLoopRequestSchema),
    responses: { 201: json(LoopEnvelopeSchema, "the loop, starting"), ...failures("invalid_request", "conflict", "busy", "too_large", "unavailable") },
  }),
  stopLoop: createRoute({ method: "post", path: "/loops/{id}/stop", request: params, responses: { ...ok(LoopEnvelopeSchema, "the loop, stopped"), ...failures("not_found") } }),
  removeLoop: createRoute({
    method: "delete",
    path: "/loops/{id}",
    request: params,
    responses: { ...ok(PruneResultSchema, "what was removed"), ...failures("not_found", "conflict") },
  }),
  prune: createRoute({ method: "post", path: "/prune", responses: { ...ok(PruneResultSchema, "what was removed"), ...failures() } }),
  say: createRoute({
    method: "post",
    path: "/loops/{id}/say",
    request: { ...params, ...body(SayRequestSchema) },
    responses: { ...ok(SayResponseSchema, "the guidance is queued"), ...failures("invalid_request", "not_found", "conflict", "too_large") },
  }),
  notifyTest: createRoute({ method: "post", path: "/notify/test", responses: { ...ok(NotifyTestResultSchema, "how each target took a test message"), ...failures() } }),
  attach: createRoute({
    method: "get",
    path: "/loops/{id}/attach",
    request: params,
    responses: { ...ok(AttachPointSchema, "where the loop's opencode is hosted, and its login"), ...failures("not_found", "conflict", "busy") },
  }),
  /**
   * Events as SSE, each with `id: seq` and a StreamEvent as data. A client
   * resumes with Last-Event-ID or ?after=SEQ and gets everything it missed
   * that is still retained (a `gap` event says when some is not), then a
   * `caught-up` event, then live events.
   */
  events: createRoute({
    method: "get",
    path: "/events",
    request: { query: EventsQuerySchema },
    responses: {
      200: { content: { "text/event-stream": { schema: z.string() } }, description: "the event stream" },
      ...failures("invalid_request", "not_found", "busy"),
    },
  }),
} as const;
