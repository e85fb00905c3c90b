import { hc, type ClientResponse } from "hono/client";
import { ApiError, isErrorCode } from "../contract/errors.js";
import type { ControlApp } from "../daemon/api.js";

/** The daemon's control API, typed from its routes (src/contract/routes.ts) through the daemon's app type. */
export const controlApi = (baseUrl: string, fetchVia: typeof fetch) => hc<ControlApp>(baseUrl, { fetch: fetchVia });
export type ControlApi = ReturnType<typeof controlApi>;

/** Readiness of a dialer to the control service: the daemon answers /health through it. */
export const controlAnswers = async (url: string, fetchVia: typeof fetch = fetch) => (await fetchVia(`${url}/health`, { signal: AbortSignal.timeout(3000) })).ok;

type AnyResponse = ClientResponse<unknown, number, "json">;
/** The body of the route's success answers. */
export type Success<R> = R extends ClientResponse<infer T, infer S, "json"> ? (S extends 200 | 201 ? T : never) : never;

/**
 * The answer's body if the daemon said yes; its refusal, rebuilt as the
 * ApiError it threw, otherwise (prefixed with the remote's name).
 */
export async function expectOk<R extends AnyResponse>(remote: string, pending: Promise<R>): Promise<Success<R>> {
  const res = await pending;
  const body = (await res.json().catch(() => undefined)) as { error?: { code?: unknown; message?: unknown } } | undefined;
  if (res.ok) return body as Success<R>;
  const { code, message } = body?.error ?? {};
  throw new ApiError(isErrorCode(code) ? code : "internal", `${remote}: ${typeof message === "string" ? message : `HTTP ${res.status}`}`);
}
