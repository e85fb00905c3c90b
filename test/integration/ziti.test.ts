// The prototype's tests, through a real OpenZiti overlay: quickstart
// controller and router, the daemon's host helper on its own identity (a
// terminator of the local daemon's loops service, as ralphd hosts a loop),
// the client's dialer, real opencode serve driven by the scripted model.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createServer as createHttpServer } from "node:http";
import { connect, createServer, type AddressInfo } from "node:net";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { startScriptedModel, type ScriptedModel } from "../../src/model/scripted-model.js";
import { scriptedModelConfig } from "../../src/model/opencode-config.js";
import { basicAuth, OPENCODE_BASE_URL, startOpencodeServer, type OpencodeServer } from "../../src/opencode/server.js";
import { DEFAULT_LIMITS } from "../../src/sandbox/limits.js";
import { enrollIdentity } from "../../src/ziti/enroll.js";
import { ManagementClient } from "../../src/ziti/mgmt.js";
import { LOCAL_NAME, createMachineIdentity, localManagementClient, revokeMachineIdentity } from "../../src/ziti/network.js";
import { identityIdOf } from "../../src/ziti/identity-file.js";
import { commandLineOf } from "../../src/process/proc-scan.js";
import { isLoopbackAddress, listenersOfTree } from "../support/sockets.js";
import { startProxyTunnel, type ProxyTunnel, type Tunnel } from "../../src/ziti/tunnel.js";
import { startZitiHost, type ZitiHost } from "../../src/ziti/host.js";
import { controlServiceName, loopsServiceName } from "../../src/ziti/roles.js";
import { signalGroup, pidAlive } from "../../src/process/supervisor.js";
import { waitFor } from "../../src/util/wait.js";
import { startTestNetwork } from "../support/ziti-network.js";

const SERVICE = loopsServiceName(LOCAL_NAME);
/** The terminator (and host key) of this test's opencode on the loops service, as a loop id would be. */
const OC = "opencode";
const REPLY = "The overlay carried this answer.";
let network: Awaited<ReturnType<typeof startTestNetwork>>;
let model: ScriptedModel;
let opencode: OpencodeServer;
let mgmt: ManagementClient;
let host: ZitiHost;
const extraHosts: ZitiHost[] = [];
let proxy: ProxyTunnel;
const extraTunnels: Tunnel[] = [];
let auth: Record<string, string>;
let work: string;

before(async () => {
  network = await startTestNetwork("ralph-ziti");
  model = await startScriptedModel({ script: { kind: "reply", text: REPLY } });
  work = mkdtempSync(join(tmpdir(), "ralph-ziti-oc-"));
  mkdirSync(join(work, "repo"));
  opencode = await startOpencodeServer({
    sandbox: { enabled: true, name: "ziti-test", dir: join(work, "box"), worktree: join(work, "repo"), ro: [], allow: [{ host: "127.0.0.1", port: model.port }], limits: DEFAULT_LIMITS, onRefused: () => undefined },
    logFile: join(work, "opencode.log"),
    config: scriptedModelConfig(model.baseUrl),
  });
  auth = { authorization: basicAuth(opencode.username, opencode.password) };
  mgmt = await localManagementClient();
  host = await startZitiHost({ identityFile: network.net.daemonIdentityFile, logFile: join(network.home, "host.log") });
  await host.host(OC, SERVICE, opencode.socket, OC);
  proxy = await startProxyTunnel({ identityFile: network.net.clientIdentityFile, service: SERVICE, terminator: OC, logFile: join(network.home, "proxy.log") });
});

after(async () => {
  for (const t of [proxy, host, ...extraTunnels, ...extraHosts]) await t?.stop();
  await mgmt?.close();
  await opencode?.stop();
  await model?.close();
  await network?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

const viaProxy = (path: string, init: RequestInit = {}) => fetch(proxy.url + path, { ...init, headers: { ...auth, "content-type": "application/json", ...(init.headers ?? {}) } });

test("health through the overlay is identical to direct access", async () => {
  const direct = await (await opencode.fetch(`${OPENCODE_BASE_URL}/global/health`, { headers: auth })).json();
  const overlay = await (await viaProxy("/global/health")).json();
  assert.deepEqual(overlay, direct);
  assert.equal((overlay as { healthy: boolean }).healthy, true);
  assert.equal((await fetch(`${proxy.url}/global/health`)).status, 401, "the password still guards opencode behind the overlay");
});

test("sessions are created and listed through the overlay", async () => {
  const created = (await (await viaProxy("/session", { method: "POST", body: "{}" })).json()) as { id: string };
  assert.match(created.id, /^ses_/);
  const list = (await (await viaProxy("/session")).json()) as { id: string }[];
  assert.ok(list.some((s) => s.id === created.id));
});

test("SSE events arrive through the overlay while the stream is open", async () => {
  const ctrl = new AbortController();
  const res = await viaProxy("/event", { signal: ctrl.signal });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  const seen: string[] = [];
  let createdId = "";
  const read = (async () => {
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += Buffer.from(value).toString();
      for (const m of buf.matchAll(/data: (.*)\n/g)) seen.push(m[1]!);
      buf = buf.slice(buf.lastIndexOf("\n") + 1);
    }
  })().catch(() => undefined);
  await waitFor(() => seen.some((s) => s.includes("server.connected")), { what: "server.connected", timeoutMs: 15_000 });
  createdId = ((await (await viaProxy("/session", { method: "POST", body: "{}" })).json()) as { id: string }).id;
  await waitFor(() => seen.some((s) => s.includes("session.created") && s.includes(createdId)), { what: "session.created on the open stream", timeoutMs: 15_000 });
  ctrl.abort();
  await read;
});

test("a prompt sent through the overlay gets the model's answer", async () => {
  const { id } = (await (await viaProxy("/session", { method: "POST", body: "{}" })).json()) as { id: string };
  const res = await viaProxy(`/session/${id}/message`, { method: "POST", body: JSON.stringify({ parts: [{ type: "text", text: "Say something." }] }) });
  assert.equal(res.status, 200);
  const answer = (await res.json()) as { parts: { type: string; text?: string }[] };
  assert.ok(answer.parts.some((p) => p.type === "text" && p.text === REPLY), JSON.stringify(answer.parts));
});

test("abort through the overlay", async () => {
  const { id } = (await (await viaProxy("/session", { method: "POST", body: "{}" })).json()) as { id: string };
  const res = await viaProxy(`/session/${id}/abort`, { method: "POST" });
  assert.equal(res.status, 200);
  assert.equal(await res.json(), true);
});

test("the endpoints opencode attach reads answer through the overlay", async () => {
  for (const path of ["/config", "/provider", "/agent", "/session", "/session/status", "/path", "/vcs", "/project/current"]) {
    const res = await viaProxy(`${path}?directory=${encodeURIComponent("/tmp")}`);
    assert.equal(res.status, 200, path);
    await res.body?.cancel();
  }
  const ctrl = new AbortController();
  const stream = await viaProxy("/global/event", { signal: ctrl.signal });
  assert.equal(stream.status, 200);
  const first = await stream.body!.getReader().read();
  assert.match(Buffer.from(first.value!).toString(), /data: /);
  ctrl.abort();
});

async function enrolledIdentity(name: string, roleAttributes: string[]): Promise<string> {
  const { id } = await mgmt.request<{ id: string }>("POST", "/identities", { name, type: "Default", isAdmin: false, roleAttributes, enrollment: { ott: true } });
  const jwt = (await mgmt.request<{ enrollment: { ott: { jwt: string } } }>("GET", `/identities/${id}`)).enrollment.ott.jwt;
  const file = join(network.home, `${name}.json`);
  await enrollIdentity(jwt, file);
  return file;
}

test("an identity without a Dial policy cannot reach the service", async () => {
  const file = await enrolledIdentity("no-dial", []);
  await assert.rejects(
    startProxyTunnel({ identityFile: file, service: SERVICE, terminator: OC, logFile: join(network.home, "nodial.log") }),
    /service ralph-loops-local is not available to identity .*no policy lets this identity dial it/,
  );
});

test("a daemon identity hosts only its own daemon's services; a client may only dial; revoking a daemon removes its services", async () => {
  const localId = identityIdOf(network.net.daemonIdentityFile);
  assert.equal(localId, (await mgmt.getIdentity("ralph-daemon-local"))?.id, "an identity file names its identity by its certificate");
  const serviceId = (await mgmt.getService(SERVICE))!.id;
  const terminatorsBefore = (await mgmt.terminators(serviceId)).length;
  const otherFile = join(network.home, "other-daemon.json");
  // ralph ziti identity create other --role daemon: the identity, and its services provisioned.
  await enrollIdentity((await createMachineIdentity(mgmt, "other", "daemon")).jwt, otherFile);
  const otherId = identityIdOf(otherFile);
  const otherControl = (await mgmt.getService(controlServiceName("other")))!;
  const otherHost = await startZitiHost({ identityFile: otherFile, logFile: join(network.home, "other-host.log") });
  extraHosts.push(otherHost);
  await otherHost.host("control", otherControl.name, opencode.socket);
  await assert.rejects(otherHost.host("intruder", SERVICE, opencode.socket, "intruder"), /service ralph-loops-local is not visible to this identity/);
  assert.equal((await mgmt.terminators(serviceId)).length, terminatorsBefore, "the other daemon did not bind the local daemon's service");
  assert.deepEqual(await mgmt.policyAdvice(otherId, serviceId), { bind: false, dial: false });
  assert.deepEqual(await mgmt.policyAdvice(otherId, otherControl.id), { bind: true, dial: false });
  assert.deepEqual(await mgmt.policyAdvice(localId, serviceId), { bind: true, dial: false });
  assert.deepEqual(await mgmt.policyAdvice(localId, otherControl.id), { bind: false, dial: false }, "nor may the local daemon bind the other's");
  assert.deepEqual(await mgmt.policyAdvice(identityIdOf(network.net.clientIdentityFile), serviceId), { bind: false, dial: true });
  await otherHost.stop();
  assert.equal(await revokeMachineIdentity(mgmt, "other"), true);
  for (const name of [controlServiceName("other"), loopsServiceName("other")]) assert.equal(await mgmt.getService(name), undefined, `${name} went with the daemon's identity`);
  assert.equal((await mgmt.listNames("service-policies")).some((p) => p.name === "ralph-bind-other"), false, "and its Bind policy");
});

test("a stream that ends by closing reaches the dialer whole, with its end", async () => {
  // No length, no chunking: the only end of this answer is the host closing the connection.
  const body = "x".repeat(256 * 1024);
  const server = createServer((socket) => socket.end(body));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const key = "close";
  try {
    await host.host(key, SERVICE, (server.address() as AddressInfo).port, key);
    const p = await startProxyTunnel({ identityFile: network.net.clientIdentityFile, service: SERVICE, terminator: key, logFile: join(network.home, "close.log"), readiness: async () => true });
    extraTunnels.push(p);
    const received = await new Promise<string>((resolve, reject) => {
      let data = "";
      const socket = connect(Number(new URL(p.url).port), "127.0.0.1");
      socket.setTimeout(20_000, () => reject(new Error(`no end after ${data.length} bytes`)));
      socket.on("data", (d: Buffer) => (data += d.toString()));
      socket.on("end", () => resolve(data));
      socket.on("error", reject);
    });
    assert.equal(received.length, body.length);
  } finally {
    server.close();
    await host.unhost(key);
  }
});

test("the host keeps serving while clients abort many streams", async () => {
  // A fast stream that clients abort mid-flow: with SDK flow control this
  // once left the host tunneler unable to accept any further connection.
  const server = createHttpServer((req, res) => {
    if (req.url !== "/stream") return void res.end("ok");
    res.writeHead(200, { "content-type": "text/event-stream" });
    const t = setInterval(() => res.write(`data: ${"x".repeat(2000)}\n\n`), 5);
    res.on("close", () => clearInterval(t));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const key = "streams";
  try {
    await host.host(key, SERVICE, (server.address() as AddressInfo).port, key);
    const failures: string[] = [];
    for (let round = 0; round < 10; round++) {
      const p = await startProxyTunnel({ identityFile: network.net.clientIdentityFile, service: SERVICE, terminator: key, logFile: join(network.home, "streams.log"), readiness: async () => true });
      await Promise.all(
        Array.from({ length: 5 }, async () => {
          try {
            const ctrl = new AbortController();
            const res = await fetch(`${p.url}/stream`, { signal: AbortSignal.any([ctrl.signal, AbortSignal.timeout(10_000)]) });
            const reader = res.body!.getReader();
            await reader.read();
            await reader.read();
            ctrl.abort();
            assert.equal(await (await fetch(`${p.url}/ok`, { signal: AbortSignal.timeout(10_000) })).text(), "ok");
          } catch (err) {
            failures.push(`round ${round}: ${(err as Error).message}`);
          }
        }),
      );
      await p.stop();
    }
    assert.deepEqual(failures, []);
  } finally {
    server.close();
    await host.unhost(key);
  }
});

test("nothing of the network, the tunnelers, opencode or the client proxy listens beyond 127.0.0.1", () => {
  const listeners = listenersOfTree(process.pid);
  assert.ok(listeners.some((l) => l.port === Number(new URL(proxy.url).port)), "the client proxy is among them");
  assert.ok(listeners.some((l) => l.command.includes("quickstart")), "and the controller and router");
  assert.deepEqual(listeners.filter((l) => !isLoopbackAddress(l.address)), []);
});

const ralphCli = (...args: string[]) => promisify(execFile)(process.execPath, [join(process.cwd(), "dist", "cli", "ralph.js"), ...args], { env: { ...process.env, RALPH_HOME: network.home } });

test("a client identity made with ralph ziti identity create works, and revoking it takes access away", async () => {
  const token = join(network.home, "laptop.jwt");
  const created = await ralphCli("ziti", "identity", "create", "laptop", "--role", "client", "--out", token);
  assert.equal(created.stdout.trim(), token);
  assert.match(created.stderr, new RegExp(`ralph remote add DAEMON --token ${token} `));
  assert.equal(statSync(token).mode & 0o777, 0o600, "tokens are private");
  assert.doesNotMatch(readFileSync(token, "utf8"), /PRIVATE KEY/, "a token, not a key, is what travels");
  const file = join(network.home, "laptop.json");
  assert.equal((await ralphCli("ziti", "enroll", "--token", token, "--out", file)).stdout.trim(), file);
  assert.equal(statSync(file).mode & 0o777, 0o600, "identity files are private");
  await assert.rejects(ralphCli("ziti", "enroll", "--token", token, "--out", join(network.home, "again.json")), (e: { code: number; stderr: string }) =>
    e.code === 2 && /enrolment failed: the controller refused the token: it was already used/.test(e.stderr),
  );
  assert.ok(!existsSync(join(network.home, "again.json")), "a refused token leaves no identity file");
  const p = await startProxyTunnel({ identityFile: file, service: SERVICE, terminator: OC, logFile: join(network.home, "revoked.log") });
  extraTunnels.push(p);
  assert.equal((await fetch(`${p.url}/global/health`, { headers: auth })).status, 200);
  assert.match((await ralphCli("ziti", "identity", "revoke", "laptop")).stdout, /revoked laptop/);
  await waitFor(
    async () => {
      try {
        await fetch(`${p.url}/global/health`, { headers: auth, signal: AbortSignal.timeout(3000) });
        return false;
      } catch {
        return true;
      }
    },
    { what: "the revoked identity to lose access", timeoutMs: 60_000, intervalMs: 500 },
  );
  await assert.rejects(startProxyTunnel({ identityFile: file, service: SERVICE, terminator: OC, logFile: join(network.home, "revoked-again.log") }), /controller refused this identity/);
  await assert.rejects(ralphCli("ziti", "identity", "revoke", "laptop"), (e: { code: number; stderr: string }) => e.code === 5 && /no identity named "laptop"/.test(e.stderr));
});

test("expired, foreign and malformed tokens are refused with the reason, and leave no identity or remote behind", async () => {
  const out = join(network.home, "never.json");
  const soon = await mgmt.createIdentity("short-lived", "client", new Date(Date.now() + 2000));
  const expired = join(network.home, "expired.jwt");
  writeFileSync(expired, soon.jwt);
  await waitFor(() => Date.parse(soon.expiresAt) < Date.now(), { what: "the token to expire", timeoutMs: 10_000 });
  await assert.rejects(ralphCli("ziti", "enroll", "--token", expired, "--out", out), (e: { code: number; stderr: string }) => e.code === 2 && /expired at .*: revoke the identity and create it again/.test(e.stderr));
  // Same claims, another signature: what a token of another network looks like to this one.
  const [header, claims] = soon.jwt.split(".");
  const forged = join(network.home, "forged.jwt");
  const live = JSON.parse(Buffer.from(claims!, "base64url").toString()) as Record<string, unknown>;
  writeFileSync(forged, `${header}.${Buffer.from(JSON.stringify({ ...live, exp: Math.floor(Date.now() / 1000) + 3600 })).toString("base64url")}.c2lnbmF0dXJl`);
  await assert.rejects(ralphCli("ziti", "enroll", "--token", forged, "--out", out), (e: { code: number; stderr: string }) => e.code === 2 && /enrolment failed: /.test(e.stderr) && !e.stderr.includes("c2lnbmF0dXJl"));
  const notToken = join(network.home, "not-a-token.txt");
  writeFileSync(notToken, "hello\n");
  await assert.rejects(ralphCli("ziti", "enroll", "--token", notToken, "--out", out), (e: { code: number; stderr: string }) => e.code === 2 && /is not a one-time enrolment token/.test(e.stderr));
  await assert.rejects(ralphCli("remote", "add", "box", "--identity", forged), (e: { code: number; stderr: string }) => e.code === 2 && /is a one-time enrolment token, not an enrolled identity: use --token/.test(e.stderr));
  await assert.rejects(ralphCli("remote", "add", "box", "--token", expired), (e: { code: number }) => e.code === 2);
  assert.ok(!existsSync(out), "no identity file was written");
  assert.equal((await ralphCli("remote", "ls", "--json")).stdout.includes('"box"'), false, "no remote was registered");
  assert.ok(await revokeMachineIdentity(mgmt, "short-lived"));
});

test("the management client logs in with an admin certificate too, and renews an expired session", async () => {
  const { id } = await mgmt.request<{ id: string }>("POST", "/identities", { name: "cert-admin", type: "Default", isAdmin: true, roleAttributes: [], enrollment: { ott: true } });
  const jwt = (await mgmt.request<{ enrollment: { ott: { jwt: string } } }>("GET", `/identities/${id}`)).enrollment.ott.jwt;
  const identityFile = join(network.home, "cert-admin.json");
  await enrollIdentity(jwt, identityFile);
  const pem = JSON.parse(readFileSync(identityFile, "utf8")) as { id: { cert: string; key: string } };
  const certFile = join(network.home, "cert-admin.cert");
  const keyFile = join(network.home, "cert-admin.key");
  writeFileSync(certFile, pem.id.cert.replace(/^pem:/, ""), { mode: 0o600 });
  writeFileSync(keyFile, pem.id.key.replace(/^pem:/, ""), { mode: 0o600 });
  const byCert = await ManagementClient.connect({ ...network.net.controller, auth: { method: "cert", certFile, keyFile } });
  try {
    assert.ok((await byCert.listNames("identities")).some((i) => i.name === "cert-admin"));
    // Ending our own API session is what an expiry looks like to the client.
    await byCert.request("DELETE", "/current-api-session");
    assert.ok((await byCert.listNames("services")).some((x) => x.name === SERVICE), "logged in again after a 401");
  } finally {
    await byCert.close();
    await mgmt.deleteIdentity("cert-admin");
  }
});

test("a killed host helper is restarted, hosts again and traffic recovers", async () => {
  const before = host.pid();
  signalGroup(before, "SIGKILL");
  await waitFor(() => host.restarts() >= 1 && host.pid() !== before && pidAlive(host.pid()), { what: "the host helper to restart", timeoutMs: 30_000 });
  await waitFor(async () => (await viaProxy("/global/health", { signal: AbortSignal.timeout(3000) })).status === 200, { what: "traffic to recover", timeoutMs: 60_000, intervalMs: 300 });
});

test("ralph ziti status and up through the CLI reuse the running network", async () => {
  const cli = join(process.cwd(), "dist", "cli", "ralph.js");
  const run = promisify(execFile);
  for (const f of ["admin-password", "network.json"]) assert.equal(statSync(join(network.home, "ziti", f)).mode & 0o777, 0o600, `${f} is private`);
  const quickstart = join(network.home, "ziti", "quickstart");
  const keyFiles = readdirSync(quickstart, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".key"));
  assert.ok(keyFiles.filter((f) => f.startsWith("pki")).length >= 5, `the PKI has its CA and server keys: ${keyFiles.join(", ")}`);
  const keysArePrivate = () => {
    for (const f of keyFiles) assert.equal(statSync(join(quickstart, f)).mode & 0o777, 0o600, `${f} is private`);
  };
  keysArePrivate();
  const env = { ...process.env, RALPH_HOME: network.home };
  const status = JSON.parse((await run(process.execPath, [cli, "ziti", "status", "--json"], { env })).stdout) as { running: boolean; pid: number; services: string[]; identities: { name: string }[] };
  assert.equal(status.running, true);
  assert.ok(status.services.includes(SERVICE));
  assert.ok(status.identities.some((i) => i.name === "ralph-daemon-local"));
  // A daemon config of an earlier release named the admin credentials: up takes them out and keeps the rest.
  const daemonConfig = join(network.home, "daemon", "config.json");
  const current = JSON.parse(readFileSync(daemonConfig, "utf8")) as Record<string, unknown>;
  assert.ok(!("controller" in current) && !("hostTunneler" in current), "up writes a daemon config without admin credentials");
  const old = { ...current, maxConcurrentLoops: 3, controller: { ...network.net.controller }, hostTunneler: "ziti" };
  writeFileSync(daemonConfig, JSON.stringify(old), { mode: 0o600 });
  const up = JSON.parse((await run(process.execPath, [cli, "ziti", "up", "--json"], { env })).stdout) as { pid: number };
  assert.equal(up.pid, status.pid, "a second up reuses the running network");
  assert.deepEqual(JSON.parse(readFileSync(daemonConfig, "utf8")), { ...current, maxConcurrentLoops: 3 }, "up took the admin credentials out of the old config, and only them");
  assert.equal(statSync(daemonConfig).mode & 0o777, 0o600);
  const argv = commandLineOf(status.pid)!.join(" ");
  assert.ok(argv.includes("quickstart"));
  assert.ok(!argv.includes("--password"), "the admin password is never on the network's command line");

  assert.match((await run(process.execPath, [cli, "ziti", "down"], { env })).stdout, /network stopped/);
  // As if ziti had rewritten a key: the next start makes it private again.
  for (const f of keyFiles) chmodSync(join(quickstart, f), 0o644);
  const down = await run(process.execPath, [cli, "ziti", "status", "--json"], { env }).catch((e: { stdout: string; code: number }) => e);
  assert.equal((down as { code?: number }).code, 6, "status exits unavailable while the network is down");
  assert.equal(JSON.parse(down.stdout).running, false);
  await assert.rejects(
    startProxyTunnel({ identityFile: network.net.clientIdentityFile, service: SERVICE, logFile: join(network.home, "down.log") }),
    /cannot reach the controller at https:\/\/127\.0\.0\.1:\d+\S*: connection refused \(is the network up, and is this its address\?\)/,
    "a controller that is down is reported as such, not as a refused identity",
  );
  // A network.json of a release before --advertise: read as 127.0.0.1 with its own ports, and kept so.
  const stateFile = join(network.home, "ziti", "network.json");
  const { advertise: _a, listen: _l, ...older } = JSON.parse(readFileSync(stateFile, "utf8")) as Record<string, unknown>;
  writeFileSync(stateFile, JSON.stringify(older), { mode: 0o600 });
  // Moving it is refused, with why and the way out; nothing is changed.
  const moved = await run(process.execPath, [cli, "ziti", "up", "--ctrl-port", String(Number(older.ctrlPort) + 1)], { env }).catch((e: { code: number; stderr: string }) => e);
  assert.equal((moved as { code?: number }).code, 2);
  assert.match((moved as { stderr: string }).stderr, /ctrlPort \d+ -> \d+: an advertised address and its ports are baked into .* another RALPH_HOME.* --recreate, which DESTROYS/);
  const again = JSON.parse((await run(process.execPath, [cli, "ziti", "up", "--json"], { env })).stdout) as { pid: number; controller: string };
  assert.notEqual(again.pid, status.pid);
  assert.equal(again.controller, `https://127.0.0.1:${older.ctrlPort}`);
  assert.deepEqual(
    (({ advertise, ctrlPort, routerPort }) => ({ advertise, ctrlPort, routerPort }))(JSON.parse(readFileSync(stateFile, "utf8")) as Record<string, unknown>),
    { advertise: "127.0.0.1", ctrlPort: older.ctrlPort, routerPort: older.routerPort },
  );
  keysArePrivate();
  const restarted = JSON.parse((await run(process.execPath, [cli, "ziti", "status", "--json"], { env })).stdout) as typeof status;
  assert.deepEqual(restarted.identities, status.identities, "a stopped network comes back with its state");
  assert.ok(restarted.services.includes(SERVICE));
});

test("ralph ziti login: another RALPH_HOME administers this controller as one it did not create; identity create, status and revoke act on it", async () => {
  const admin = mkdtempSync(join(tmpdir(), "ralph-admin-"));
  const asAdmin = (...args: string[]) =>
    promisify(execFile)(process.execPath, [join(process.cwd(), "dist", "cli", "ralph.js"), ...args], { env: { ...process.env, RALPH_HOME: admin } }).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
  try {
    const passwordFile = join(admin, "pw");
    writeFileSync(passwordFile, readFileSync(join(network.home, "ziti", "admin-password")), { mode: 0o600 });
    const ca = network.net.controller.caFile;
    const url = network.net.controller.url;
    const noCa = await asAdmin("ziti", "login", url, "--username", "admin", "--password-file", passwordFile);
    assert.notEqual(noCa.code, 0);
    assert.match(noCa.stderr, /--ca <file>/, "the CA is required: never trusted on first use");
    const wrongPw = join(admin, "wrong");
    writeFileSync(wrongPw, "not-the-password\n");
    const refused = await asAdmin("ziti", "login", url, "--ca", ca, "--username", "admin", "--password-file", wrongPw);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /login to https:\/\/127\.0\.0\.1:\d+ failed: controller refused POST \/authenticate/);
    assert.ok(!existsSync(join(admin, "ziti", "login", "controller.json")), "a failed login keeps nothing");

    const ok = await asAdmin("ziti", "login", url, "--ca", ca, "--username", "admin", "--password-file", passwordFile, "--json");
    assert.equal(ok.code, 0, ok.stderr);
    for (const f of readdirSync(join(admin, "ziti", "login"))) assert.equal(statSync(join(admin, "ziti", "login", f)).mode & 0o777, 0o600, `${f} is private`);
    assert.ok(!existsSync(join(admin, "ziti", "network.json")), "no network of its own");

    const token = join(admin, "far.jwt");
    const created = await asAdmin("ziti", "identity", "create", "far", "--role", "daemon", "--out", token);
    assert.equal(created.code, 0, created.stderr);
    assert.ok(await mgmt.getService(controlServiceName("far")), "the daemon's services are provisioned on that controller");
    const status = JSON.parse((await asAdmin("ziti", "status", "--json")).stdout) as { loggedIn: boolean; running: boolean; identities: { name: string; role: string; enrolled: boolean }[] };
    assert.equal(status.loggedIn, true);
    assert.equal(status.running, true);
    assert.deepEqual(
      status.identities.filter((i) => i.name === "far").map(({ role, enrolled }) => ({ role, enrolled })),
      [{ role: "daemon", enrolled: false }],
    );
    assert.equal((await asAdmin("ziti", "identity", "revoke", "far")).code, 0);
    assert.equal(await mgmt.getIdentity("far"), undefined);
    assert.equal(await mgmt.getService(controlServiceName("far")), undefined, "its services went with it");
    assert.match((await asAdmin("ziti", "logout")).stdout, /logged out/);
    assert.ok(!existsSync(join(admin, "ziti", "login")), "the credentials are gone from this machine");
  } finally {
    rmSync(admin, { recursive: true, force: true });
  }
});

test("the first command against a controller that takes connections and never answers fails in seconds, naming it", async () => {
  // An outage as a laptop sees it: something answers the TCP connection, nothing answers the login.
  const held: import("node:net").Socket[] = [];
  const silent = createServer((s) => held.push(s));
  await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
  const home = mkdtempSync(join(tmpdir(), "ralph-outage-"));
  try {
    const identity = JSON.parse(readFileSync(network.net.clientIdentityFile, "utf8")) as { ztAPI: string };
    const identityFile = join(home, "laptop.json");
    writeFileSync(identityFile, JSON.stringify({ ...identity, ztAPI: `https://127.0.0.1:${(silent.address() as AddressInfo).port}/edge/client/v1` }), { mode: 0o600 });
    mkdirSync(join(home, "client"), { recursive: true });
    writeFileSync(join(home, "client", "remotes.json"), JSON.stringify({ remotes: { away: { identityFile, service: controlServiceName(LOCAL_NAME) } } }));
    const t0 = Date.now();
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) =>
      execFile(process.execPath, [join(process.cwd(), "dist", "cli", "ralph.js"), "ls", "--remote", "away"], { env: { ...process.env, RALPH_HOME: home } }, (err, _out, stderr) =>
        resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, stderr }),
      ),
    );
    const took = Date.now() - t0;
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /no answer from the controller at https:\/\/127\.0\.0\.1:\d+\/edge\/client\/v1 .*no answer to the login within 3s/);
    assert.ok(took < 8000, `the first command failed in ${took} ms, not the SDK's 10 s and more`);
  } finally {
    for (const s of held) s.destroy();
    silent.close();
    await promisify(execFile)(process.execPath, [join(process.cwd(), "dist", "cli", "ralph.js"), "agent", "stop"], { env: { ...process.env, RALPH_HOME: home } }).catch(() => undefined);
    rmSync(home, { recursive: true, force: true });
  }
});
