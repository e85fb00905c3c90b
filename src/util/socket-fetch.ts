import { Agent, request } from "node:http";
import { Readable } from "node:stream";

/**
 * A fetch that speaks HTTP over a Unix socket: the client agent's dialers,
 * a loop's opencode (sockets only their user may open). node:http does this
 * natively; undici could too, but costs ~0.15 s to load on every command.
 */
export function socketFetch(socketPath: string): typeof fetch {
  // Keep-alive: consecutive requests of one command share one overlay circuit.
  const agent = new Agent({ keepAlive: true });
  return async (input, init) => {
    const req = input instanceof Request ? input : undefined;
    let body = init?.body ?? null;
    // A Request (as typed clients send) carries its body itself.
    if (body === null && req?.body) body = await req.text();
    if (body !== null && typeof body !== "string") throw new TypeError("socketFetch sends string bodies only");
    const signal = init?.signal ?? req?.signal ?? undefined;
    const method = init?.method ?? req?.method ?? "GET";
    return new Promise<Response>((resolve, reject) => {
      const url = new URL(req ? req.url : String(input));
      const headers = new Headers(init?.headers ?? req?.headers);
      const outgoing = request({ socketPath, agent, method, path: url.pathname + url.search, headers: Object.fromEntries(headers), signal });
      outgoing.on("error", reject);
      outgoing.on("response", (res) => {
        const responseHeaders = new Headers();
        for (const [name, value] of Object.entries(res.headers)) for (const v of [value ?? []].flat()) responseHeaders.append(name, v);
        const status = res.statusCode ?? 502;
        const empty = status === 204 || status === 304 || method === "HEAD";
        if (empty) res.resume();
        resolve(new Response(empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), { status, statusText: res.statusMessage, headers: responseHeaders }));
      });
      outgoing.end(body ?? undefined);
    });
  };
}
