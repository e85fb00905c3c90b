// Direct vs through the OpenZiti overlay, side by side against one opencode
// server: request latency (new connection and keep-alive), SSE event latency,
// and time from hosting a loop's terminator to the first successful dial.
import { Agent, request } from "node:http";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { startScriptedModel } from "../src/model/scripted-model.js";
import { scriptedModelConfig } from "../src/model/opencode-config.js";
import { basicAuth, OPENCODE_BASE_URL, startOpencodeServer } from "../src/opencode/server.js";
import { DEFAULT_LIMITS } from "../src/sandbox/limits.js";
import { LOCAL_NAME, type LocalNetwork } from "../src/ziti/network.js";
import { startZitiHost } from "../src/ziti/host.js";
import { loopsServiceName } from "../src/ziti/roles.js";
import { startProxyTunnel } from "../src/ziti/tunnel.js";
import { waitFor } from "../src/util/wait.js";
import { summarize, table, type Summary } from "./stats.js";

/** A GET target: a URL, or a path on a Unix socket (opencode's own, reached directly). */
type Target = { url: string; socketPath?: string; agent: Agent | false };

function timedGet(t: Target, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const url = new URL(t.url);
    const req = request(t.socketPath ? { socketPath: t.socketPath, path: url.pathname, headers, agent: t.agent } : { host: url.hostname, port: url.port, path: url.pathname, headers, agent: t.agent }, (res) => {
      res.resume();
      res.on("end", () => (res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on("error", reject);
    req.end();
  });
}

/** Interleaves the two targets request by request so both see the same machine noise. */
async function sideBySide(targets: Record<string, Target>, headers: Record<string, string>, n: number) {
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(targets).map((k) => [k, []]));
  for (const t of Object.values(targets)) for (let i = 0; i < 10; i++) await timedGet(t, headers); // warm-up
  for (let i = 0; i < n; i++) for (const [k, t] of Object.entries(targets)) samples[k]!.push(await timedGet(t, headers));
  return Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v)])) as Record<string, Summary>;
}

/** Time from creating a session to its session.created event on each open stream. */
async function sseLatency(streams: Record<string, { base: string; fetch: typeof fetch }>, create: () => Promise<Response>, headers: Record<string, string>, n: number) {
  const arrivals: Record<string, Map<string, number>> = {};
  const ctrl = new AbortController();
  for (const [name, stream] of Object.entries(streams)) {
    const seen = new Map<string, number>();
    arrivals[name] = seen;
    const res = await stream.fetch(`${stream.base}/event`, { headers, signal: ctrl.signal });
    const reader = res.body!.getReader();
    void (async () => {
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += Buffer.from(value).toString();
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          const m = /"type":"session.created".*?"id":"(ses_[^"]+)"/.exec(line);
          if (m && !seen.has(m[1]!)) seen.set(m[1]!, performance.now());
        }
      }
    })().catch(() => undefined);
  }
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(streams).map((k) => [k, []]));
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const { id } = (await (await create()).json()) as { id: string };
    for (const [k, seen] of Object.entries(arrivals)) {
      const at = await waitFor(() => seen.get(id), { what: `session.created on ${k}`, timeoutMs: 10_000, intervalMs: 1 });
      samples[k]!.push(at - t0);
    }
  }
  ctrl.abort();
  return Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v)])) as Record<string, Summary>;
}

export async function runOverlayBench(opts: { requests: number; home: string; net: LocalNetwork; log: (s: string) => void }) {
  const { home, net } = opts;
  const model = await startScriptedModel({ script: { kind: "reply", text: "ok" } });
  const work = mkdtempSync(join(tmpdir(), "ralph-bench-oc-"));
  mkdirSync(join(work, "repo"));
  // As a loop's opencode runs: in its sandbox, reached by its Unix socket.
  const oc = await startOpencodeServer({
    sandbox: { enabled: true, name: "bench-overlay", dir: join(work, "box"), worktree: join(work, "repo"), ro: [], allow: [{ host: "127.0.0.1", port: model.port }], limits: DEFAULT_LIMITS, onRefused: () => undefined },
    logFile: join(work, "opencode.log"),
    config: scriptedModelConfig(model.baseUrl),
  });
  // As ralphd hosts a loop: a terminator of the local daemon's loops service, on the daemon's own identity.
  const service = loopsServiceName(LOCAL_NAME);
  const host = await startZitiHost({ identityFile: net.daemonIdentityFile, logFile: join(home, "bench-host.log") });
  const cleanup: (() => Promise<unknown>)[] = [() => host.stop(), () => oc.stop(), () => model.close(), async () => rmSync(work, { recursive: true, force: true })];
  try {
    await host.host("bench", service, oc.socket, "bench");
    const proxy = await startProxyTunnel({ identityFile: net.clientIdentityFile, service, terminator: "bench", logFile: join(home, "bench-proxy.log") });
    cleanup.unshift(() => proxy.stop(), () => host.unhost("bench"));
    const headers = { authorization: basicAuth(oc.username, oc.password) };
    opts.log(`${opts.requests} requests each, interleaved: new connection per request`);
    const direct = (agent: Agent | false): Target => ({ url: `${OPENCODE_BASE_URL}/global/health`, socketPath: oc.socket, agent });
    const fresh = await sideBySide({ direct: direct(false), overlay: { url: `${proxy.url}/global/health`, agent: false } }, headers, opts.requests);
    opts.log(`${opts.requests} requests each, interleaved: keep-alive`);
    const ka = await sideBySide(
      {
        direct: direct(new Agent({ keepAlive: true, maxSockets: 1 })),
        overlay: { url: `${proxy.url}/global/health`, agent: new Agent({ keepAlive: true, maxSockets: 1 }) },
      },
      headers,
      opts.requests,
    );
    opts.log("SSE event latency (session.created), 50 events");
    const sse = await sseLatency(
      { direct: { base: OPENCODE_BASE_URL, fetch: oc.fetch }, overlay: { base: proxy.url, fetch } },
      () => oc.fetch(`${OPENCODE_BASE_URL}/session`, { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: "{}" }),
      headers,
      50,
    );

    opts.log("time from hosting a terminator to first successful dial, 5 terminators");
    const dialable: number[] = [];
    for (let i = 0; i < 5; i++) {
      const name = `bench-new-${i}`;
      const p = await startProxyTunnel({ identityFile: net.clientIdentityFile, service, terminator: name, logFile: join(home, `bench-proxy-${i}.log`), readiness: async () => true, awaitService: true });
      const t0 = performance.now();
      await host.host(name, service, oc.socket, name);
      await waitFor(async () => (await fetch(`${p.url}/global/health`, { headers, signal: AbortSignal.timeout(2000) })).status === 200, { what: `${name} to be dialable`, timeoutMs: 60_000, intervalMs: 50 });
      dialable.push(performance.now() - t0);
      await p.stop();
      await host.unhost(name);
    }
    const dial = summarize(dialable);
    return {
      direct: fresh.direct!,
      overlay: fresh.overlay!,
      direct_keepalive: ka.direct!,
      overlay_keepalive: ka.overlay!,
      sse: { direct: sse.direct!, overlay: sse.overlay! },
      time_to_dialable_ms: dial.p50_ms,
      time_to_dialable: dial,
      tables: [
        "Request latency, new connection per request (ms)\n" + table([["direct", fresh.direct!], ["overlay", fresh.overlay!]], fresh.direct!),
        "Request latency, keep-alive (ms)\n" + table([["direct", ka.direct!], ["overlay", ka.overlay!]], ka.direct!),
        "SSE event latency, session.created (ms)\n" + table([["direct", sse.direct!], ["overlay", sse.overlay!]], sse.direct!),
        `Hosting a loop terminator to its first successful dial through a running proxy: median ${dial.p50_ms.toFixed(0)} ms (min ${dial.min_ms.toFixed(0)}, max ${dial.max_ms.toFixed(0)}, n=${dial.n})`,
      ],
    };
  } finally {
    for (const c of cleanup) await c().catch(() => undefined);
  }
}
