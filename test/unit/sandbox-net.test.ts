// The sandbox's network rules, the model endpoints a loop may reach, and the
// egress proxy on real sockets: what it lets through, what it refuses and
// reports, and that refusals cannot flood the events.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import { connect, createServer as createTcpServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { allows, formatNetRule, parseNetRule } from "../../src/sandbox/net-rules.js";
import { modelEndpoints } from "../../src/sandbox/model-endpoints.js";
import { startEgressProxy } from "../../src/sandbox/egress-proxy.js";
import { refusalReporter } from "../../src/sandbox/refusals.js";

const dir = mkdtempSync(join(tmpdir(), "ralph-egress-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("HOST[:PORT] rules parse, print back the same, and match only their host and port", () => {
  assert.deepEqual(parseNetRule("Registry.NPMJS.org"), { host: "registry.npmjs.org" });
  assert.deepEqual(parseNetRule("127.0.0.1:11434"), { host: "127.0.0.1", port: 11434 });
  assert.deepEqual(parseNetRule("[::1]:8080"), { host: "::1", port: 8080 });
  assert.equal(formatNetRule(parseNetRule("[::1]:8080")), "[::1]:8080");
  for (const bad of ["", "-x.com", "a..b", "host:0", "host:70000", "host:12ab", "http://x.com", "x.com/path", "a b"]) {
    assert.throws(() => parseNetRule(bad), /is not a host name or IP address|has no valid port/, bad);
  }
  const rules = ["example.com", "*.pythonhosted.org", "127.0.0.1:11434"].map(parseNetRule);
  assert.ok(allows(rules, "example.com", 443) && allows(rules, "EXAMPLE.com.", 80));
  assert.ok(!allows(rules, "example.com", 22), "no port: 80 and 443 only");
  assert.ok(allows(rules, "files.pythonhosted.org", 443) && !allows(rules, "pythonhosted.org", 443), "a wildcard is for subdomains");
  assert.ok(!allows(rules, "evilpythonhosted.org", 443));
  assert.ok(allows(rules, "127.0.0.1", 11434) && !allows(rules, "127.0.0.1", 11435) && !allows(rules, "localhost", 11434));
});

test("a rule allows no host but its own, whatever the names (property)", () => {
  const label = fc.stringMatching(/^[a-z0-9]{1,10}$/);
  const host = fc.array(label, { minLength: 1, maxLength: 3 }).map((l) => l.join("."));
  fc.assert(
    fc.property(host, host, fc.integer({ min: 1, max: 65535 }), (a, b, port) => {
      const rule = parseNetRule(`${a}:${port}`);
      assert.equal(allows([rule], b, port), a === b);
      assert.equal(allows([parseNetRule(`*.${a}`)], `${b}.${a}`, 443), true);
      assert.equal(allows([parseNetRule(`*.${a}`)], b, 443), b.endsWith(`.${a}`));
    }),
  );
});

test("model endpoints come from the daemon's config and the keys it holds, never from what is not offered", () => {
  const config = { provider: { local: { options: { baseURL: "http://127.0.0.1:11434/v1" } }, anthropic: {} }, model: "local/llama" };
  const { rules, providers } = modelEndpoints({ config, env: { OPENAI_API_KEY: "sk-x" } });
  assert.deepEqual(providers, ["anthropic", "local", "openai"]);
  assert.deepEqual(rules.map(formatNetRule).sort(), ["127.0.0.1:11434", "api.anthropic.com:443", "api.openai.com:443"]);
  assert.deepEqual(modelEndpoints({ env: {} }).rules, [], "nothing offered, nothing reachable");
  // Pinned providers: others are dropped, and a model of another is refused.
  assert.deepEqual(modelEndpoints({ config, env: { OPENAI_API_KEY: "sk-x" }, pinned: ["local"] }).rules.map(formatNetRule), ["127.0.0.1:11434"]);
  assert.throws(() => modelEndpoints({ config, env: {}, model: "openai/gpt", pinned: ["local"] }), /model openai\/gpt is of provider openai, which this daemon does not offer \(sandbox\.providers: local\)/);
  assert.throws(() => modelEndpoints({ env: {}, model: "mystery/m1" }), /cannot tell which host provider mystery answers on.*--allow-net HOST\[:PORT\]/);
});

async function listening<S extends Server | ReturnType<typeof createTcpServer>>(s: S): Promise<number> {
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return (s.address() as AddressInfo).port;
}

test("the egress proxy forwards allowed requests and tunnels, refuses the rest with 403 and reports each, and closes all it holds", async () => {
  const upstream = createServer((req, res) => res.end(`hello from ${req.url}`));
  const allowedPort = await listening(upstream);
  let refusedConnections = 0;
  const closed = createTcpServer((s) => (refusedConnections++, s.destroy()));
  const deniedPort = await listening(closed);
  const refusals: string[] = [];
  const socket = join(dir, "proxy.sock");
  const proxy = await startEgressProxy({ socket, allow: [{ host: "127.0.0.1", port: allowedPort }], onRefused: (h, p) => refusals.push(`${h}:${p}`) });
  const viaProxy = (path: string, method = "GET") =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ socketPath: socket, path, method }, (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", reject);
      req.end();
    });
  try {
    assert.deepEqual(await viaProxy(`http://127.0.0.1:${allowedPort}/v1/chat`), { status: 200, body: "hello from /v1/chat" });
    const denied = await viaProxy(`http://127.0.0.1:${deniedPort}/`);
    assert.equal(denied.status, 403);
    assert.match(denied.body, new RegExp(`127\\.0\\.0\\.1:${deniedPort} is not on this loop's allowlist.*--allow-net 127\\.0\\.0\\.1:${deniedPort}`));
    assert.equal((await viaProxy("/relative")).status, 400);
    // CONNECT: a tunnel to the allowed port carries bytes both ways; another is refused.
    const tunnel = (target: string) =>
      new Promise<{ status: number; reply?: string }>((resolve, reject) => {
        const req = request({ socketPath: socket, method: "CONNECT", path: target });
        req.on("connect", (res, s) => {
          s.write(`GET /tunnelled HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
          let reply = "";
          s.on("data", (d: Buffer) => (reply += d));
          s.on("end", () => resolve({ status: res.statusCode ?? 0, reply }));
        });
        req.on("response", (res) => resolve({ status: res.statusCode ?? 0 }));
        req.on("error", reject);
        req.end();
      });
    const open = await tunnel(`127.0.0.1:${allowedPort}`);
    assert.equal(open.status, 200);
    assert.match(open.reply ?? "", /hello from \/tunnelled/);
    assert.equal((await tunnel(`example.com:443`)).status, 403);
    assert.deepEqual(refusals, [`127.0.0.1:${deniedPort}`, "example.com:443"]);
    assert.equal(refusedConnections, 0, "a refused target is never connected to");
  } finally {
    await proxy.close();
    upstream.close();
    closed.close();
  }
  await assert.rejects(new Promise((resolve, reject) => connect(socket).on("connect", resolve).on("error", reject)), /ENOENT|ECONNREFUSED/);
});

test("refusals are reported at once the first time, then counted: a flood of them is a few events", async () => {
  const events: { host: string; port: number; count: number }[] = [];
  const r = refusalReporter((e) => events.push(e), 50);
  for (let i = 0; i < 1000; i++) r.refused("evil.example", 443);
  r.refused("other.example", 80);
  assert.deepEqual(events, [
    { host: "evil.example", port: 443, count: 1 },
    { host: "other.example", port: 80, count: 1 },
  ]);
  await new Promise((res) => setTimeout(res, 80));
  assert.deepEqual(events[2], { host: "evil.example", port: 443, count: 999 }, "the rest, counted, once the window ends");
  r.refused("evil.example", 443);
  r.flush();
  assert.equal(events.length, 4, "a new window starts with an event of its own");
});
