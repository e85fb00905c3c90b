import { createServer, request, Agent, type IncomingMessage, type ServerResponse } from "node:http";
import { connect, type Socket } from "node:net";
import { chmodSync, chownSync, rmSync } from "node:fs";
import { allows, type NetRule } from "./net-rules.js";

/**
 * The only way out of a loop's sandbox: an HTTP proxy (plain requests by
 * absolute URI, anything else by CONNECT) on a Unix socket that is bridged
 * into the sandbox, outside it, in the daemon. A connection to a host:port
 * off the allowlist is refused with 403 and reported.
 */
export interface EgressProxy {
  socket: string;
  close(): Promise<void>;
}

export interface EgressProxyOptions {
  socket: string;
  allow: readonly NetRule[];
  onRefused: (host: string, port: number) => void;
  /** The sandbox's user when it is not ours (ralphd as root): it must be able to connect. */
  owner?: { uid: number; gid: number };
}

/** Headers that belong to one hop, never forwarded. */
const HOP = new Set(["proxy-connection", "proxy-authorization", "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"]);

/** host:port of a CONNECT target (brackets for IPv6). */
function splitTarget(target: string): { host: string; port: number } | undefined {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(target);
  if (!m) return undefined;
  const port = Number(m[2]);
  return port >= 1 && port <= 65535 ? { host: m[1]!, port } : undefined;
}

const refusal = (host: string, port: number) =>
  `ralph sandbox: ${host}:${port} is not on this loop's allowlist. The owner can allow it with --allow-net ${host}:${port} (ralph start/run) or sandbox.allowNet in the daemon config.\n`;

export async function startEgressProxy(opts: EgressProxyOptions): Promise<EgressProxy> {
  // Keep-alive upstream: model requests come one after another to one host.
  const agent = new Agent({ keepAlive: true, maxFreeSockets: 4 });
  const open = new Set<Socket>();
  const track = (s: Socket) => {
    open.add(s);
    s.once("close", () => open.delete(s));
  };

  const forward = (req: IncomingMessage, res: ServerResponse) => {
    let url: URL;
    try {
      url = new URL(req.url ?? "");
    } catch {
      res.writeHead(400, { "content-type": "text/plain" }).end("ralph sandbox: a proxy request needs an absolute http:// URL\n");
      return;
    }
    if (url.protocol !== "http:") {
      res.writeHead(400, { "content-type": "text/plain" }).end("ralph sandbox: only http:// is proxied by URL; https goes by CONNECT\n");
      return;
    }
    const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
    const port = url.port ? Number(url.port) : 80;
    if (!allows(opts.allow, host, port)) {
      opts.onRefused(host, port);
      res.writeHead(403, { "content-type": "text/plain" }).end(refusal(host, port));
      return;
    }
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP.has(k)) headers[k] = v;
    const upstream = request({ host, port, method: req.method, path: url.pathname + url.search, headers, agent }, (up) => {
      const back: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(up.headers)) if (v !== undefined && !HOP.has(k)) back[k] = v;
      res.writeHead(up.statusCode ?? 502, up.statusMessage, back);
      up.pipe(res);
    });
    upstream.on("error", (err) => {
      if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
      res.end(`ralph sandbox: ${host}:${port} could not be reached: ${err.message}\n`);
    });
    // The client went away mid-answer: so does the upstream request (a finished one keeps its socket for reuse).
    res.on("close", () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  };

  const server = createServer(forward);
  server.on("connect", (req: IncomingMessage, client: Socket, head: Buffer) => {
    track(client);
    const target = splitTarget(req.url ?? "");
    if (!target) {
      client.end("HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\n\r\nralph sandbox: CONNECT needs host:port\n");
      return;
    }
    if (!allows(opts.allow, target.host, target.port)) {
      opts.onRefused(target.host, target.port);
      client.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\n\r\n${refusal(target.host, target.port)}`);
      return;
    }
    const upstream = connect(target.port, target.host);
    track(upstream);
    upstream.once("connect", () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on("error", (err) => {
      if (upstream.connecting) client.end(`HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\n\r\nralph sandbox: ${req.url} could not be reached: ${err.message}\n`);
      else client.destroy();
    });
    client.on("error", () => upstream.destroy());
    client.on("close", () => upstream.destroy());
  });
  server.on("connection", track);
  server.on("clientError", (_err, socket) => socket.destroy());

  // A socket file left by a daemon that died is in the way.
  rmSync(opts.socket, { force: true });
  await new Promise<void>((resolveListen, reject) => {
    server.once("error", reject);
    server.listen(opts.socket, () => resolveListen());
  });
  chmodSync(opts.socket, 0o600);
  if (opts.owner) chownSync(opts.socket, opts.owner.uid, opts.owner.gid);

  return {
    socket: opts.socket,
    close: () =>
      new Promise<void>((resolveClose) => {
        for (const s of open) s.destroy();
        agent.destroy();
        server.close(() => resolveClose());
      }),
  };
}
