import { chmodSync, mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { startProxyTunnel, type ProxyTunnel } from "../../ziti/tunnel.js";
import { controlAnswers } from "../api.js";
import { agentBuild, agentDir, agentLogPath, agentSocketPath, dialerKey, idleExitSeconds, removeStaleSockets, type AgentAnswer, type AgentRequest, type DialerStatus } from "./protocol.js";
import { pidAlive } from "../../process/alive.js";

interface Dialer {
  label: string;
  service: string;
  socket: string;
  tunnel: Promise<ProxyTunnel>;
  lastUsed: number;
  /** Commands connected now that opened it. */
  users: Set<Socket>;
}

/**
 * The per-user client agent, in the manner of ssh's ControlMaster: it keeps
 * a dialer to each recently used daemon so that a command reuses a logged-in
 * overlay connection instead of starting and authenticating its own. It
 * listens only on a 0600 Unix socket in a 0700 directory, drops a dialer no
 * command used for the idle period, and exits when no command has used it
 * for that long. Its dialers die with it.
 */
export async function runAgent(log: (line: string) => void): Promise<void> {
  const dir = agentDir();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  // An agent killed outright left its dialers' sockets.
  removeStaleSockets(pidAlive);
  const idleMs = idleExitSeconds() * 1000;
  const build = agentBuild();
  const dialers = new Map<string, Dialer>();
  const clients = new Set<Socket>();
  let lastActivity = Date.now();
  let started = 0;

  /** Dialers being stopped: the agent exits only after them, their sockets gone. */
  const stopping = new Set<Promise<void>>();
  const stop = (d: Dialer) => {
    const done = d.tunnel
      .then((t) => t.stop())
      .catch(() => undefined)
      .finally(() => {
        rmSync(d.socket, { force: true });
        stopping.delete(done);
      });
    stopping.add(done);
  };
  const drop = (key: string) => {
    const d = dialers.get(key);
    if (!d) return;
    dialers.delete(key);
    stop(d);
    log(`dropped the dialer for ${d.label}`);
  };

  const open = (req: Extract<AgentRequest, { op: "open" }>, from: Socket): Promise<AgentAnswer> => {
    const key = dialerKey(req.identityFile, req.service);
    let d = dialers.get(key);
    if (!d) {
      // A new name for each dialer (and agent): one being dropped may still hold the last.
      const socket = join(dir, `dial-${process.pid}-${++started}.sock`);
      const tunnel = startProxyTunnel({
        identityFile: req.identityFile,
        service: req.service,
        socketPath: socket,
        logFile: join(dirname(agentLogPath()), `agent-${req.service}.log`),
        readiness: controlAnswers,
      });
      d = { label: req.label, service: req.service, socket, tunnel, lastUsed: Date.now(), users: new Set() };
      dialers.set(key, d);
      log(`starting a dialer for ${req.label} (${req.service})`);
      tunnel.catch(() => dialers.get(key) === d && dialers.delete(key));
    }
    const dialer = d;
    dialer.lastUsed = Date.now();
    dialer.users.add(from);
    return dialer.tunnel.then(
      () => ({ id: req.id, ok: true, socket: dialer.socket }),
      (err: Error) => ({ id: req.id, ok: false, kind: "unavailable", message: err.message }),
    );
  };

  const answer = async (req: AgentRequest, from: Socket): Promise<AgentAnswer> => {
    switch (req.op) {
      case "open":
        return open(req, from);
      case "failed": {
        const key = dialerKey(req.identityFile, req.service);
        const tunnel = await dialers.get(key)?.tunnel.catch(() => undefined);
        const lastError = tunnel?.lastError();
        drop(key);
        return { id: req.id, ok: true, ...(lastError ? { lastError } : {}) };
      }
      case "hello":
        return { id: req.id, ok: true, build };
      case "status": {
        const list: DialerStatus[] = [];
        for (const d of dialers.values()) {
          const t = await d.tunnel.catch(() => undefined);
          if (t) list.push({ label: d.label, service: d.service, socket: d.socket, pid: t.pid(), idleSeconds: Math.round((Date.now() - d.lastUsed) / 1000) });
        }
        return { id: req.id, ok: true, status: { pid: process.pid, idleExitSeconds: idleMs / 1000, dialers: list } };
      }
      case "stop":
        setImmediate(() => void shutdown("asked to stop"));
        return { id: req.id, ok: true };
      default:
        return { id: (req as { id: number }).id, ok: false, kind: "invalid", message: `unknown op ${JSON.stringify((req as { op: unknown }).op)}` };
    }
  };

  const server = createServer((sock) => {
    clients.add(sock);
    lastActivity = Date.now();
    sock.on("error", () => undefined);
    sock.on("close", () => {
      clients.delete(sock);
      lastActivity = Date.now();
      for (const d of dialers.values()) if (d.users.delete(sock)) d.lastUsed = Date.now();
    });
    createInterface({ input: sock }).on("line", (line) => {
      let req: AgentRequest;
      try {
        req = JSON.parse(line) as AgentRequest;
      } catch {
        return sock.destroy();
      }
      void answer(req, sock).then((a) => sock.writable && sock.write(JSON.stringify(a) + "\n"));
    });
  });

  let exiting = false;
  let ownInode: number | undefined;
  const shutdown = async (why: string) => {
    if (exiting) return;
    exiting = true;
    log(`exiting: ${why}`);
    clearInterval(sweep);
    server.close();
    // Only our own socket: an agent that took the name over keeps it.
    if (statSync(agentSocketPath(), { throwIfNoEntry: false })?.ino === ownInode) rmSync(agentSocketPath(), { force: true });
    for (const key of [...dialers.keys()]) drop(key);
    await Promise.all(stopping);
    process.exit(0);
  };

  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [key, d] of dialers) if (d.users.size === 0 && now - d.lastUsed > idleMs) drop(key);
    if (clients.size === 0 && now - lastActivity > idleMs) void shutdown(`idle for ${Math.round((now - lastActivity) / 1000)} s`);
  }, Math.min(10_000, Math.max(200, idleMs / 4)));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));

  // Bound to a private name, then renamed into place: a second agent started
  // at the same moment takes the name over, and the first idles out unused.
  const temp = `${agentSocketPath()}.${process.pid}`;
  rmSync(temp, { force: true });
  const umask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(temp, () => resolve());
    });
  } finally {
    process.umask(umask);
  }
  chmodSync(temp, 0o600);
  ownInode = statSync(temp).ino;
  renameSync(temp, agentSocketPath());
  log(`listening on ${agentSocketPath()} (pid ${process.pid}, idle exit after ${idleMs / 1000} s)`);
}
