// The daemon's host helper (tools/ziti/host) through a real OpenZiti overlay:
// a quickstart network, a daemon identity that may bind only its own two
// services, loops hosted as addressable terminators of one service, and the
// client's real dialer.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, get as httpGet, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { execFileSync } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Agent, fetch as undiciFetch } from "undici";
import { ensureDialerBinary, ensureHostBinary } from "../../src/ziti/binary.js";
import { enrollIdentity } from "../../src/ziti/enroll.js";
import { startZitiHost, type ZitiHost } from "../../src/ziti/host.js";
import type { ManagementClient } from "../../src/ziti/mgmt.js";
import { localManagementClient } from "../../src/ziti/network.js";
import { provisionDaemonServices, removeDaemonServices, type DaemonServices } from "../../src/ziti/provision.js";
import { bindPolicyName, controlServiceName, loopsServiceName } from "../../src/ziti/roles.js";
import { startProxyTunnel, type ProxyTunnel } from "../../src/ziti/tunnel.js";
import { pidAlive, signalGroup } from "../../src/process/supervisor.js";
import { waitFor } from "../../src/util/wait.js";
import { JsonLinesProcess } from "../support/json-lines-process.js";
import { bindsInStrace, isLoopbackBind, listenersOfTree, processTree } from "../support/sockets.js";
import { startTestNetwork } from "../support/ziti-network.js";

const DAEMON = "box";
const OTHER = "other";
let network: Awaited<ReturnType<typeof startTestNetwork>>;
let mgmt: ManagementClient;
let daemonFile: string;
let daemonId: string;
let services: DaemonServices;
let host: ZitiHost;
const servers: Record<string, { server: Server; port: number }> = {};
const proxies: ProxyTunnel[] = [];
let paProxy: ProxyTunnel;
let pbProxy: ProxyTunnel;
const extraHosts: ZitiHost[] = [];
const LOOPS = loopsServiceName(DAEMON);

async function httpServer(name: string): Promise<{ server: Server; port: number }> {
  const server = createServer((_req, res) => res.end(name));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, port: (server.address() as AddressInfo).port };
}

async function daemonIdentity(name: string): Promise<{ file: string; id: string }> {
  const { id, jwt } = await mgmt.createIdentity(`ralph-daemon-${name}`, "daemon");
  const file = join(network.home, `ralph-daemon-${name}.json`);
  await enrollIdentity(jwt, file);
  return { file, id };
}

const log = (name: string) => join(network.home, `${name}.log`);

async function proxy(service: string, terminator?: string, extra: Partial<Parameters<typeof startProxyTunnel>[0]> = {}): Promise<ProxyTunnel> {
  const p = await startProxyTunnel({ identityFile: network.net.clientIdentityFile, service, terminator, logFile: log(`proxy-${terminator ?? service}`), ...extra });
  proxies.push(p);
  return p;
}

const get = async (url: string): Promise<string> => (await fetch(url, { signal: AbortSignal.timeout(5000) })).text();

/** A GET on a connection of its own (fetch keeps its connections alive): one dial each. */
const getOnNewConnection = (url: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const req = httpGet(url, { agent: false, timeout: 5000 }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve(body));
    });
    req.on("timeout", () => req.destroy(new Error(`no answer from ${url} in 5 s`)));
    req.on("error", reject);
  });

const terminatorsOf = (serviceId: string) => mgmt.request<{ id: string; identity?: string }[]>("GET", `/services/${serviceId}/terminators`);

let fabric: { agent: Agent; token: string } | undefined;
/** How many circuits the controller has to a terminator of the loops service (its fabric API, which the management client does not cover). */
async function circuitsTo(terminator: string): Promise<number> {
  const { url, caFile, auth } = network.net.controller;
  assert.equal(auth.method, "password");
  if (!fabric) {
    const agent = new Agent({ connect: { ca: readFileSync(caFile, "utf8") } });
    const login = await undiciFetch(new URL("/edge/management/v1/authenticate?method=password", url), {
      method: "POST",
      dispatcher: agent,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: auth.username, password: readFileSync(auth.passwordFile, "utf8").trim() }),
    });
    fabric = { agent, token: ((await login.json()) as { data: { token: string } }).data.token };
  }
  const ids = new Set((await terminatorsOf(services.loopsServiceId)).filter((t) => t.identity === terminator).map((t) => t.id));
  const res = await undiciFetch(new URL("/fabric/v1/circuits?limit=500", url), { dispatcher: fabric.agent, headers: { "zt-session": fabric.token } });
  const circuits = ((await res.json()) as { data: { terminator?: { id: string } }[] }).data;
  return circuits.filter((c) => c.terminator && ids.has(c.terminator.id)).length;
}

before(async () => {
  network = await startTestNetwork("ralph-ziti-host");
  mgmt = await localManagementClient();
  await ensureHostBinary();
  ({ file: daemonFile, id: daemonId } = await daemonIdentity(DAEMON));
  services = await provisionDaemonServices(mgmt, DAEMON, daemonId);
  const other = await daemonIdentity(OTHER);
  await provisionDaemonServices(mgmt, OTHER, other.id);
  for (const name of ["loop-a", "loop-b", "control", "probe"]) servers[name] = await httpServer(name);
  host = await startZitiHost({ identityFile: daemonFile, logFile: log("host") });
});

after(async () => {
  for (const p of proxies) await p.stop();
  for (const h of [host, ...extraHosts]) await h?.stop();
  for (const s of Object.values(servers)) s.server.close();
  await mgmt?.close();
  await fabric?.agent.close();
  await network?.stop();
});

test("provisioning is idempotent and grants exactly the daemon's identity exactly its two services", async () => {
  assert.deepEqual(await provisionDaemonServices(mgmt, DAEMON, daemonId), services, "a second run changes nothing");
  const policy = (await mgmt.request<{ name: string; type: string; identityRoles: string[]; serviceRoles: string[] }[]>("GET", `/service-policies?filter=${encodeURIComponent(`name="${bindPolicyName(DAEMON)}"`)}`))[0]!;
  assert.equal(policy.type, "Bind");
  assert.deepEqual(policy.identityRoles, [`@${daemonId}`]);
  assert.deepEqual([...policy.serviceRoles].sort(), [`@${services.controlServiceId}`, `@${services.loopsServiceId}`].sort());
  for (const name of [controlServiceName(DAEMON), LOOPS]) {
    const s = (await mgmt.request<{ id: string; encryptionRequired: boolean; configs: string[]; roleAttributes: string[] }[]>("GET", `/services?filter=${encodeURIComponent(`name="${name}"`)}`))[0]!;
    assert.equal(s.encryptionRequired, true, name);
    assert.deepEqual(s.configs ?? [], [], `${name} has no configs`);
    assert.deepEqual(await mgmt.policyAdvice(daemonId, s.id), { bind: true, dial: false }, name);
    assert.deepEqual(await mgmt.policyAdvice((await mgmt.getIdentity("ralph-client-local"))!.id, s.id), { bind: false, dial: true }, `clients may dial ${name}`);
  }
  const otherControl = (await mgmt.getService(controlServiceName(OTHER)))!;
  assert.deepEqual(await mgmt.policyAdvice(daemonId, otherControl.id), { bind: false, dial: false }, "nor may it bind another daemon's");
});

test("two loops hosted as terminators of one service are each reached by their own dial; an unknown one fails at once", async () => {
  await Promise.all([host.host("loop-a", LOOPS, servers["loop-a"]!.port, "loop-a"), host.host("loop-b", LOOPS, servers["loop-b"]!.port, "loop-b")]);
  [paProxy, pbProxy] = await Promise.all([proxy(LOOPS, "loop-a"), proxy(LOOPS, "loop-b")]);
  for (let i = 0; i < 3; i++) {
    assert.equal(await get(paProxy.url), "loop-a");
    assert.equal(await get(pbProxy.url), "loop-b");
  }
  const identities = (await terminatorsOf(services.loopsServiceId)).map((t) => t.identity).sort();
  assert.deepEqual(identities, ["loop-a", "loop-b"]);
  const t0 = Date.now();
  await assert.rejects(proxy(LOOPS, "loop-unknown"), /loop-unknown is not hosted on service ralph-loops-box .*has no terminators for instanceId loop-unknown/);
  assert.ok(Date.now() - t0 < 10_000, `failed after ${Date.now() - t0} ms`);
});

test("a hosted terminator is dialable right after host() resolves (time recorded)", async (t) => {
  const p = await proxy(LOOPS, "probe", { awaitService: true, readiness: async () => true });
  const times: number[] = [];
  for (let round = 0; round < 5; round++) {
    // The same key hosted again after unhost: each time a new terminator.
    await host.host("probe", LOOPS, servers["probe"]!.port, "probe");
    const hosted = performance.now();
    await waitFor(async () => (await get(p.url)) === "probe", { what: "the first dial to reach the probe", timeoutMs: 30_000, intervalMs: 5 });
    times.push(performance.now() - hosted);
    await host.unhost("probe");
    await waitFor(async () => !(await terminatorsOf(services.loopsServiceId)).some((x) => x.identity === "probe"), { what: "the probe terminator to go", timeoutMs: 30_000 });
  }
  const sorted = [...times].sort((a, b) => a - b);
  const summary = `host-to-dialable ms: ${times.map((x) => x.toFixed(1)).join(", ")}; median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(1)}`;
  t.diagnostic(summary);
  console.log(summary);
});

test("after unhost the terminator is gone: dials fail and the controller lists none with that name", async () => {
  assert.equal(await get(paProxy.url), "loop-a");
  await host.unhost("loop-a");
  assert.ok(!host.hosted().includes("loop-a"));
  await waitFor(async () => !(await terminatorsOf(services.loopsServiceId)).some((x) => x.identity === "loop-a"), { what: "the loop-a terminator to go", timeoutMs: 30_000 });
  await assert.rejects(get(paProxy.url), "a dial for the unhosted loop fails");
  assert.deepEqual((await terminatorsOf(services.loopsServiceId)).map((x) => x.identity), ["loop-b"], "loop-b is still hosted");
  assert.equal(await get(pbProxy.url), "loop-b");
});

test("the daemon's identity cannot host another daemon's service, and a client identity cannot host at all", async () => {
  await assert.rejects(
    host.host("stolen", controlServiceName(OTHER), servers["control"]!.port),
    /service ralph-control-other is not visible to this identity: it does not exist, or no policy lets this identity bind it/,
  );
  await assert.rejects(host.host("stolen-loop", loopsServiceName(OTHER), servers["control"]!.port, "x"), /service ralph-loops-other is not visible to this identity/);
  assert.deepEqual(
    (await terminatorsOf((await mgmt.getService(controlServiceName(OTHER)))!.id)).length,
    0,
    "the other daemon's service has no terminator",
  );
  const client = await startZitiHost({ identityFile: network.net.clientIdentityFile, logFile: log("client-host") });
  extraHosts.push(client);
  await assert.rejects(client.host("c", controlServiceName(DAEMON), servers["control"]!.port), /this identity may not bind service ralph-control-box: no Bind policy names it/);
  await assert.rejects(client.host("c", LOOPS, servers["control"]!.port, "c"), /this identity may not bind service ralph-loops-box/);
});

test("the control service, hosted without a terminator, is reached by a plain dial", async () => {
  await host.host("control", controlServiceName(DAEMON), servers["control"]!.port);
  const p = await proxy(controlServiceName(DAEMON));
  assert.equal(await get(p.url), "control");
  const terminators = await terminatorsOf(services.controlServiceId);
  assert.equal(terminators.length, 1);
});

test("every bind() of the helper during login and hosting is on loopback, and it listens nowhere", async () => {
  const bin = await ensureHostBinary();
  const trace = join(network.home, "host.strace");
  const traced = new JsonLinesProcess("strace", ["-f", "-qq", "-e", "trace=bind,connect", "-o", trace, bin, "-identity", daemonFile]);
  try {
    await traced.event((e) => e.event === "ready", "the traced helper's login");
    traced.send({ op: "host", key: "traced-control", service: controlServiceName(DAEMON), port: servers["control"]!.port });
    traced.send({ op: "host", key: "traced", service: LOOPS, terminator: "traced", port: servers["probe"]!.port });
    await traced.event((e) => e.event === "hosted" && e.key === "traced", "hosted");
    await traced.event((e) => e.event === "hosted" && e.key === "traced-control", "hosted control");
    const p = await proxy(LOOPS, "traced");
    assert.equal(await get(p.url), "probe");
    assert.deepEqual(listenersOfTree(traced.child.pid!), [], "the helper holds no listening socket");
    traced.send({ op: "unhost", key: "traced" });
    await traced.event((e) => e.event === "unhosted" && e.key === "traced", "unhosted");
  } finally {
    traced.child.stdin!.end();
    await traced.exited;
  }
  const log = readFileSync(trace, "utf8");
  assert.match(log, /connect\(/, "the trace saw the helper's connections");
  const binds = bindsInStrace(log);
  assert.deepEqual(binds.filter((b) => !isLoopbackBind(b)), [], `binds: ${JSON.stringify(binds)}`);
});

test("neither the dialer nor the helper starts a program per dial or per hosting", async () => {
  // The SDK looked the OS up (lsb_release: 7 programs here, ~13 ms) before
  // every dial and every listen; now once per process.
  const DIALS = 20;
  const KEYS = 8;
  const execs = (file: string) => readFileSync(file, "utf8").split("\n").filter((l) => /execve\(/.test(l)).length - 1;
  const hostTrace = join(network.home, "exec-host.strace");
  const dialTrace = join(network.home, "exec-dial.strace");
  const traceArgs = (file: string) => ["-f", "-qq", "-e", "trace=execve", "-o", file];
  const helper = new JsonLinesProcess("strace", [...traceArgs(hostTrace), await ensureHostBinary(), "-identity", daemonFile]);
  const dialer = new JsonLinesProcess("strace", [...traceArgs(dialTrace), await ensureDialerBinary(), "-identity", network.net.clientIdentityFile, "-service", LOOPS, "-terminator", "exec-0"]);
  try {
    await helper.event((e) => e.event === "ready", "the traced helper's login");
    for (let i = 0; i < KEYS; i++) helper.send({ op: "host", key: `exec-${i}`, service: LOOPS, terminator: `exec-${i}`, port: servers["probe"]!.port });
    for (let i = 0; i < KEYS; i++) await helper.event((e) => e.event === "hosted" && e.key === `exec-${i}`, `exec-${i} hosted`);
    const { address } = (await dialer.event((e) => e.event === "listening", "the traced dialer's listener")) as { address: string };
    for (let i = 0; i < DIALS; i++) assert.equal(await getOnNewConnection(`http://${address}`), "probe");
  } finally {
    helper.child.stdin!.end();
    // The dialer is strace's child; strace ends, with a whole trace, once it has.
    for (const pid of processTree(dialer.child.pid!).filter((p) => p !== dialer.child.pid)) {
      try {
        process.kill(pid, "SIGTERM");
      } catch {
        /* already gone */
      }
    }
    await Promise.all([helper.exited, dialer.exited]);
  }
  assert.ok(execs(dialTrace) < DIALS, `the dialer started ${execs(dialTrace)} programs for ${DIALS} dials`);
  assert.ok(execs(hostTrace) < KEYS, `the helper started ${execs(hostTrace)} programs for ${KEYS} hostings`);
});

test("after a connection the dialer keeps one spare circuit for a few seconds, never one whose host went away", async () => {
  servers["spare"] = await httpServer("spare");
  await host.host("spare", LOOPS, servers["spare"]!.port, "spare");
  const dialer = new JsonLinesProcess(await ensureDialerBinary(), ["-identity", network.net.clientIdentityFile, "-service", LOOPS, "-terminator", "spare"]);
  try {
    const { address } = (await dialer.event((e) => e.event === "listening", "the dialer's listener")) as { address: string };
    const url = `http://${address}`;
    assert.equal(await circuitsTo("spare"), 0, "a dialer that served no connection holds no circuit");
    assert.equal(await getOnNewConnection(url), "spare");
    await waitFor(async () => (await circuitsTo("spare")) === 1, { what: "one spare circuit after the connection ended", timeoutMs: 3000, intervalMs: 50 });

    // Hosted anew: the spare's circuit ended with the old hosting; the next
    // connection must not get it. (Until the controller drops the old
    // terminator, a dial may still be routed to it and fail.)
    await host.unhost("spare");
    await waitFor(async () => !(await terminatorsOf(services.loopsServiceId)).some((t) => t.identity === "spare"), { what: "the old spare terminator to go", timeoutMs: 30_000 });
    await host.host("spare", LOOPS, servers["spare"]!.port, "spare");
    assert.equal(await getOnNewConnection(url), "spare");
    assert.deepEqual(dialer.events.filter((e) => e.event === "dial-error"), []);

    await waitFor(async () => (await circuitsTo("spare")) === 1, { what: "a new spare", timeoutMs: 3000, intervalMs: 50 });
    const idleFrom = Date.now();
    await waitFor(async () => (await circuitsTo("spare")) === 0, { what: "the unused spare to be closed", timeoutMs: 15_000, intervalMs: 200 });
    const kept = Date.now() - idleFrom;
    assert.ok(kept > 3000 && kept < 7000, `the spare was kept ${kept} ms`);
  } finally {
    dialer.child.kill("SIGTERM");
    await dialer.exited;
    await host.unhost("spare");
  }
});

test("the helper exits when its parent is killed", async () => {
  const bin = await ensureHostBinary();
  // Its stdin is a FIFO this test holds open, and its output a file: neither
  // ends with the parent, so only the parent's death can end the helper.
  const fifo = join(network.home, "orphan.stdin");
  const out = join(network.home, "orphan.out");
  execFileSync("mkfifo", [fifo]);
  const keepOpen = openSync(fifo, "r+");
  const parent = new JsonLinesProcess("/bin/sh", ["-c", '"$0" -identity "$1" <"$2" >"$3" 2>&1 & echo "{\\"pid\\":$!}"; wait', bin, daemonFile, fifo, out]);
  let pid: number | undefined;
  try {
    ({ pid } = (await parent.event((e) => typeof e.pid === "number", "the helper's pid")) as { pid: number });
    await waitFor(() => existsSync(out) && readFileSync(out, "utf8").includes('"event":"ready"'), { what: "the helper's login", timeoutMs: 60_000 });
    assert.ok(pidAlive(pid));
    parent.child.kill("SIGKILL");
    await parent.exited;
    await waitFor(() => !pidAlive(pid!), { what: "the helper to die with its parent", timeoutMs: 10_000, intervalMs: 50 });
  } finally {
    if (pid && pidAlive(pid)) process.kill(pid, "SIGKILL");
    closeSync(keepOpen);
  }
});

test("a killed helper is restarted and hosts everything again", async () => {
  await host.host("loop-a", LOOPS, servers["loop-a"]!.port, "loop-a");
  assert.equal(await get(paProxy.url), "loop-a");
  const before = host.pid();
  signalGroup(before, "SIGKILL");
  await waitFor(() => host.restarts() >= 1 && host.pid() !== before && pidAlive(host.pid()), { what: "the helper to restart", timeoutMs: 30_000 });
  for (const [url, answer] of [
    [paProxy.url, "loop-a"],
    [pbProxy.url, "loop-b"],
  ] as const) {
    await waitFor(async () => (await get(url).catch(() => "")) === answer, { what: `${answer} to answer again`, timeoutMs: 60_000, intervalMs: 200 });
  }
  assert.deepEqual(host.hosted().sort(), ["control", "loop-a", "loop-b"]);
});

test("removing a daemon's services takes its policy and services away", async () => {
  assert.equal(await removeDaemonServices(mgmt, OTHER), true);
  assert.equal(await mgmt.getService(controlServiceName(OTHER)), undefined);
  assert.equal(await mgmt.getService(loopsServiceName(OTHER)), undefined);
  assert.equal((await mgmt.request<unknown[]>("GET", `/service-policies?filter=${encodeURIComponent(`name="${bindPolicyName(OTHER)}"`)}`)).length, 0);
  assert.equal(await removeDaemonServices(mgmt, OTHER), false, "a second removal finds nothing");
});
