import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

export interface Received {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** When it arrived (ms since the epoch). */
  at: number;
}

/** A local HTTP receiver that records every request and answers with the queued status codes (then 200). */
export async function startReceiver() {
  const requests: Received[] = [];
  const statuses: number[] = [];
  let held: Array<() => void> | null = null;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      requests.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks).toString("utf8"), at: Date.now() });
      const status = statuses.shift() ?? 200;
      const answer = () => res.writeHead(status).end("ok");
      if (held) held.push(answer);
      else answer();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const close = () => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    /** Answers the next requests with these codes, in order. */
    answer: (...codes: number[]) => statuses.push(...codes),
    /** Receives requests but answers none until release(). */
    hold: () => (held = []),
    release: () => {
      const pending = held ?? [];
      held = null;
      for (const answer of pending) answer();
    },
    close,
  };
}

/** A port nothing listens on. */
export async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
