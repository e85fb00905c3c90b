// The whole two-machine flow across three hosts: Linux network namespaces of
// this test's own (`net` runs the network, `daemon` runs ralphd and the
// scripted model, `laptop` runs the client), joined by a bridge on a private
// subnet that exists only between them, with no route anywhere else. Every
// step runs the real binaries inside its namespace (`ip netns exec`), each
// host with its own RALPH_HOME; only the shared filesystem (the node binary,
// dist/, the cached ziti helpers, the origin repo) is common to them.
import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { execa } from "execa";
import { cacheDir } from "../../src/config/paths.js";
import { scriptedModelConfig } from "../../src/model/opencode-config.js";
import { waitFor } from "../../src/util/wait.js";
import { cli, makeProject, ralphdScript } from "../support/daemon-harness.js";
import { git, gitEnv, threeStoryPrd } from "../support/loop-fixtures.js";
import { bindsInStrace, isLoopbackBind } from "../support/sockets.js";

const tag = `ralph-${process.pid}`;
const NS = { bridge: `${tag}-br`, net: `${tag}-net`, daemon: `${tag}-daemon`, laptop: `${tag}-laptop` } as const;
type Host = "net" | "daemon" | "laptop";
// A subnet per run; it exists only inside these namespaces, so it cannot
// collide with the machine's own routes.
const subnet = `10.231.${process.pid % 250}`;
const IP: Record<Host, string> = { net: `${subnet}.1`, daemon: `${subnet}.2`, laptop: `${subnet}.3` };
const CTRL_PORT = 1280;
const ROUTER_PORT = 3022;
/** The scripted model's port inside the daemon namespace (a fresh namespace has every port free). */
const MODEL_PORT = 18080;
/** Files `ip netns exec` mounts over /etc inside the daemon namespace (its own hosts file). */
const etcNetns = `/etc/netns/${NS.daemon}`;
const modelModule = join(process.cwd(), "dist", "model", "main.js");

const root = mkdtempSync(join(tmpdir(), `${tag}-`));
const HOME: Record<Host, string> = { net: join(root, "net"), daemon: join(root, "daemon"), laptop: join(root, "laptop") };
const traces = join(root, "traces");
let traceSeq = 0;
const nsReady: string[] = [];
const background: ChildProcess[] = [];
let ralphd: ChildProcess | undefined;
let ralphdOut: () => string = () => "";
let model: ChildProcess | undefined;
let project: { repo: string; origin: string };

// The same cache everywhere, so no namespace builds the ziti helpers again.
const baseEnv = (host: Host): Record<string, string> => ({
  ...(process.env as Record<string, string>),
  ...gitEnv,
  RALPH_HOME: HOME[host],
  RALPH_CACHE_DIR: cacheDir(),
  NO_COLOR: "1",
});

async function ip(...args: string[]): Promise<void> {
  const r = await execa("ip", args, { reject: false, all: true });
  if (r.exitCode !== 0) throw new Error(`ip ${args.join(" ")} failed: ${r.all}`);
}

/** A command inside a host's namespace; never rejects, the test asserts. */
async function inHost(host: Host, cmd: string[], opts: { cwd?: string; input?: string; strace?: boolean } = {}) {
  const trace = opts.strace ? join(traces, `${host}-${++traceSeq}.strace`) : undefined;
  const argv = ["netns", "exec", NS[host], ...(trace ? ["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=bind", "-o", trace] : []), ...cmd];
  const r = await execa("ip", argv, { env: baseEnv(host), cwd: opts.cwd, input: opts.input, reject: false, timeout: 180_000 });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr), trace };
}

/** `ralph ARGS` on a host; the laptop's commands run under the bind audit. */
const ralph = (host: Host, args: string[], cwd?: string) => inHost(host, [process.execPath, cli, ...args], { cwd, strace: host === "laptop" });
const ralphdCli = (args: string[]) => inHost("daemon", [process.execPath, ralphdScript, ...args], { strace: true });

function ok(r: { code: number; stdout: string; stderr: string }, what: string): string {
  assert.equal(r.code, 0, `${what} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout.trim();
}

/** A long-running process in a namespace, its output kept. */
function spawnIn(host: Host, cmd: string[], strace?: string): { child: ChildProcess; out: () => string } {
  const argv = ["netns", "exec", NS[host], ...(strace ? ["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=bind", "-o", strace] : []), ...cmd];
  const child = spawn("ip", argv, { env: baseEnv(host), stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  background.push(child);
  return { child, out: () => out };
}

/** The scripted model inside the daemon's namespace, always on MODEL_PORT so the daemon's config stays valid. */
async function startModel(script: "ralph-agent" | "hang"): Promise<ChildProcess> {
  const m = spawnIn("daemon", [process.execPath, modelModule, "--port", String(MODEL_PORT), "--script", script]);
  await waitFor(() => m.out().includes("listening on") || (m.child.exitCode !== null ? Promise.reject(new Error(`the model exited: ${m.out()}`)) : false), {
    what: "the scripted model in the daemon namespace",
    timeoutMs: 30_000,
  });
  return m.child;
}

/**
 * The process strace runs: strace started with -o blocks fatal signals
 * (its -I default), so a signal meant for the traced program goes to it.
 */
function traced(child: ChildProcess): number {
  const kids = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
  assert.equal(kids.length, 1, `strace ${child.pid} runs one program`);
  return Number(kids[0]);
}

/** Signals a child (through strace when traced) and waits for it, SIGKILL after 15 s. */
async function stopChild(child: ChildProcess | undefined, signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
  const gone = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  let target = child.pid!;
  try {
    if (child.spawnargs.includes("strace")) target = traced(child);
  } catch {
    /* strace already gone */
  }
  process.kill(target, signal);
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  try {
    return await gone;
  } finally {
    clearTimeout(timer);
  }
}

/** TCP and UDP listeners in a namespace, as "address:port". */
async function listeners(host: Host): Promise<string[]> {
  const r = await execa("ip", ["netns", "exec", NS[host], "ss", "-ltunH"], { reject: false });
  assert.equal(r.exitCode, 0, `ss in ${host}: ${r.stderr}`);
  return String(r.stdout)
    .split("\n")
    .filter(Boolean)
    .map((l) => l.trim().split(/\s+/)[4]!);
}
const isLoopbackSocket = (a: string) => /^(127\.[\d.]+|\[::1\]|\[::ffff:127\.[\d.]+\]):\d+$/.test(a);

/** Every file under a directory, for secret scans. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .map((f) => join(dir, f))
    .filter((f) => {
      try {
        return statSync(f).isFile();
      } catch {
        return false;
      }
    });
}

/** The body lines of every PEM private key under a directory (identity files and PKI). */
function privateKeysUnder(dir: string): string[] {
  const keys: string[] = [];
  // Keys live in small files; the controller's store is extended (sparse) to far more than a string can hold.
  for (const f of filesUnder(dir).filter((file) => statSync(file).size < 8 * 2 ** 20)) {
    const text = readFileSync(f, "utf8").replace(/\\n/g, "\n");
    for (const m of text.matchAll(/-----BEGIN [A-Z ]*PRIVATE KEY-----\n([A-Za-z0-9+/=]{40,})/g)) keys.push(m[1]!);
  }
  return keys;
}

before(async () => {
  mkdirSync(traces, { recursive: true });
  for (const h of Object.values(HOME)) mkdirSync(h, { recursive: true, mode: 0o700 });
  try {
    await ip("netns", "add", NS.bridge);
  } catch (err) {
    throw new Error(
      `this test needs Linux network namespaces (run it as root, or with CAP_NET_ADMIN and CAP_SYS_ADMIN): ${(err as Error).message}. ` +
        "It is not skipped: without namespaces the three-host flow is not proven.",
    );
  }
  nsReady.push(NS.bridge);
  await ip("-n", NS.bridge, "link", "add", "br0", "type", "bridge");
  await ip("-n", NS.bridge, "link", "set", "br0", "up");
  for (const host of ["net", "daemon", "laptop"] as const) {
    await ip("netns", "add", NS[host]);
    nsReady.push(NS[host]);
    // Interface names are per namespace, so short fixed ones are fine.
    await ip("-n", NS[host], "link", "add", "eth0", "type", "veth", "peer", "name", `to-${host}`, "netns", NS.bridge);
    await ip("-n", NS.bridge, "link", "set", `to-${host}`, "master", "br0", "up");
    await ip("-n", NS[host], "addr", "add", `${IP[host]}/24`, "dev", "eth0");
    await ip("-n", NS[host], "link", "set", "eth0", "up");
    await ip("-n", NS[host], "link", "set", "lo", "up");
  }
  // The origin both the laptop's repo and the daemon use: a bare repo on the shared filesystem.
  project = makeProject(join(root, "project"), ["ralph/three", "ralph/stopped"], (b) => threeStoryPrd(b));
});

let failed = false;
afterEach((t) => {
  // TestContext.passed exists at run time (Node 20.20) but not in @types/node 20.
  failed ||= (t as { passed?: boolean }).passed === false;
});

after(async () => {
  // What the hosts said, before their homes are gone.
  if (failed) {
    const tail = (f: string) => (existsSync(f) ? readFileSync(f, "utf8").split("\n").slice(-40).join("\n") : "(none)");
    const netLog = join(HOME.net, "ziti", "quickstart.log");
    const stops = existsSync(netLog) ? readFileSync(netLog, "utf8").split("\n").filter((l) => /panic|fatal|shutting down|signal/i.test(l)).join("\n") : "";
    process.stderr.write(`--- ralphd (daemon):\n${ralphdOut().split("\n").slice(-40).join("\n")}\n--- the network's stops (net):\n${stops}\n--- the end of its log:\n${tail(netLog)}\n`);
  }
  // Everything this test started runs inside its namespaces: end those
  // processes by id, then the namespaces, even when a step failed.
  await stopChild(ralphd);
  for (const c of background) await stopChild(c, "SIGKILL");
  if (nsReady.includes(NS.net)) await ralph("net", ["ziti", "down"]).catch(() => undefined);
  for (const ns of nsReady) {
    const pids = await execa("ip", ["netns", "pids", ns], { reject: false });
    for (const pid of String(pids.stdout).split("\n").filter(Boolean)) {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {
        /* gone */
      }
    }
  }
  for (const ns of nsReady.reverse()) await execa("ip", ["netns", "del", ns], { reject: false });
  rmSync(etcNetns, { recursive: true, force: true });
  const left = String((await execa("ip", ["netns", "list"], { reject: false })).stdout);
  rmSync(root, { recursive: true, force: true });
  assert.ok(!left.includes(tag), `namespaces of this test are left: ${left}`);
});

// Each step has its own timeout (150 s) below the file's, so a hung step
// fails alone and the after hook still removes the namespaces.
let boxToken: string;
let laptopToken: string;

test("net: the network comes up advertised on its subnet address, listening there only, on its two ports", { timeout: 150_000 }, async () => {
  const up = JSON.parse(ok(await ralph("net", ["ziti", "up", "--advertise", IP.net, "--json"]), "ziti up")) as { controller: string };
  assert.equal(up.controller, `https://${IP.net}:${CTRL_PORT}`);
  const state = JSON.parse(readFileSync(join(HOME.net, "ziti", "network.json"), "utf8")) as Record<string, unknown>;
  assert.deepEqual({ advertise: state.advertise, ctrlPort: state.ctrlPort, routerPort: state.routerPort }, { advertise: IP.net, ctrlPort: CTRL_PORT, routerPort: ROUTER_PORT });
  // Only the controller and the router listen, on the advertised address;
  // the quickstart has no loopback-only listeners either (checked, not assumed).
  assert.deepEqual((await listeners("net")).sort(), [`${IP.net}:${CTRL_PORT}`, `${IP.net}:${ROUTER_PORT}`].sort());
  const moved = await ralph("net", ["ziti", "up", "--advertise", "10.231.254.1"]);
  assert.equal(moved.code, 2);
  assert.match(moved.stderr, /baked into the network's certificates.*another RALPH_HOME.*--recreate, which DESTROYS this network: every identity, service and enrolment/s);
  const status = JSON.parse(ok(await ralph("net", ["ziti", "status", "--json"]), "ziti status")) as { advertise: string; ctrlPort: number; routerPort: number };
  assert.deepEqual({ advertise: status.advertise, ctrlPort: status.ctrlPort, routerPort: status.routerPort }, { advertise: IP.net, ctrlPort: CTRL_PORT, routerPort: ROUTER_PORT });

  for (const [name, role] of [["box", "daemon"], ["laptop", "client"]] as const) {
    const r = JSON.parse(ok(await ralph("net", ["ziti", "identity", "create", name, "--role", role, "--json"]), `identity create ${name}`)) as { tokenFile: string; next: string };
    if (role === "daemon") assert.match(r.next, /^ralphd join --token /);
    // The token travels to the other host; it is a secret until used, and no key.
    const pending = (JSON.parse(ok(await ralph("net", ["ziti", "status", "--json"]), "status")) as { identities: { name: string; enrolled: boolean; tokenExpiresAt?: string }[] }).identities.find((i) => i.name === name);
    assert.equal(pending?.enrolled, false, `${name} has not enrolled yet`);
    assert.ok(pending?.tokenExpiresAt && Date.parse(pending.tokenExpiresAt) > Date.now(), "its token's expiry shows");
    const dest = join(root, `${name}.jwt`);
    cpSync(r.tokenFile, dest);
    if (role === "daemon") boxToken = dest;
    else laptopToken = dest;
  }
});

test("daemon: ralphd join enrols with the token and writes a config that ralphd check passes; refused tokens leave nothing behind", { timeout: 150_000 }, async () => {
  const joined = JSON.parse(ok(await ralphdCli(["join", "--token", boxToken, "--json"]), "ralphd join")) as { name: string; configFile: string; identityFile: string };
  assert.equal(joined.name, "box", "the name comes from the services the identity may host");
  assert.equal(joined.configFile, join(HOME.daemon, "daemon", "config.json"));
  assert.equal(statSync(joined.identityFile).mode & 0o777, 0o600);
  assert.equal(statSync(joined.configFile).mode & 0o777, 0o600);

  // The daemon offers the scripted model, which runs in its own namespace.
  const opencodeConfigFile = join(HOME.daemon, "daemon-opencode.json");
  writeFileSync(opencodeConfigFile, JSON.stringify(scriptedModelConfig(`http://127.0.0.1:${MODEL_PORT}/v1`)));
  const config = JSON.parse(readFileSync(joined.configFile, "utf8")) as Record<string, unknown>;
  writeFileSync(joined.configFile, JSON.stringify({ ...config, opencodeConfigFile, maxConcurrentLoops: 2 }, null, 2));

  const check = await ralphdCli(["check"]);
  assert.equal(check.code, 0, check.stdout + check.stderr);
  assert.match(check.stdout, new RegExp(`ok +controller: https://${IP.net.replace(/\./g, "\\.")}:${CTRL_PORT}.* answers from this host`));

  // Reused, expired and foreign tokens: refused with the reason, no identity or config written.
  const other = join(HOME.daemon, "other");
  const [header, claims] = readFileSync(boxToken, "utf8").trim().split(".");
  const live = JSON.parse(Buffer.from(claims!, "base64url").toString()) as Record<string, unknown>;
  const expired = join(root, "expired.jwt");
  writeFileSync(expired, `${header}.${Buffer.from(JSON.stringify({ ...live, exp: Math.floor(Date.now() / 1000) - 60 })).toString("base64url")}.c2ln`);
  const foreign = join(root, "foreign.jwt");
  writeFileSync(foreign, `${header}.${Buffer.from(JSON.stringify({ ...live, exp: Math.floor(Date.now() / 1000) + 3600 })).toString("base64url")}.c2ln`);
  for (const [token, why] of [
    [boxToken, /the controller refused the token: it was already used/],
    [expired, /expired at .*: revoke the identity and create it again/],
    [foreign, /enrolment failed: /],
  ] as const) {
    const r = await ralphdCli(["join", "--token", token, "--config", join(other, "config.json")]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, why);
    assert.ok(!existsSync(join(other, "config.json")) && !existsSync(join(other, "identity.json")), `nothing half-written after ${token}`);
  }
});

test("daemon: ralphd check names a refused connection and a certificate name mismatch as such", { timeout: 150_000 }, async () => {
  const identity = JSON.parse(readFileSync(join(HOME.daemon, "daemon", "identity.json"), "utf8")) as { ztAPI: string };
  const config = JSON.parse(readFileSync(join(HOME.daemon, "daemon", "config.json"), "utf8")) as Record<string, unknown>;
  const variant = async (label: string, ztAPI: string) => {
    const dir = join(HOME.daemon, label);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "identity.json"), JSON.stringify({ ...identity, ztAPI }), { mode: 0o600 });
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...config, identityFile: join(dir, "identity.json") }));
    const r = await ralphdCli(["check", "--config", join(dir, "config.json"), "--json"]);
    assert.notEqual(r.code, 0);
    const results = JSON.parse(r.stdout) as { name: string; ok: boolean; detail: string }[];
    const controller = results.find((c) => c.name === "controller")!;
    rmSync(dir, { recursive: true, force: true });
    return controller;
  };
  const refused = await variant("refused", `https://${IP.net}:${CTRL_PORT + 1}/edge/client/v1`);
  assert.equal(refused.ok, false);
  assert.match(refused.detail, /connection refused/);
  // A name for the net host that its certificates do not carry: `ip netns
  // exec` mounts /etc/netns/NS/hosts over /etc/hosts inside that namespace.
  mkdirSync(etcNetns, { recursive: true });
  writeFileSync(join(etcNetns, "hosts"), `127.0.0.1 localhost\n${IP.net} ralph-net.test\n`);
  const mismatch = await variant("mismatch", `https://ralph-net.test:${CTRL_PORT}/edge/client/v1`);
  assert.equal(mismatch.ok, false);
  assert.match(mismatch.detail, new RegExp(`certificate for other names: it was reached as "ralph-net.test" but its certificate names .*${IP.net.replace(/\./g, "\\.")}`));
  assert.match(mismatch.detail, /--advertise/);
});

test("laptop: ralph remote add --token enrols there and the daemon answers; nothing listens beyond loopback on daemon and laptop", { timeout: 150_000 }, async () => {
  model = await startModel("ralph-agent");
  const d = spawnIn("daemon", [process.execPath, ralphdScript], join(traces, "ralphd.strace"));
  ralphd = d.child;
  await waitFor(() => d.out().includes(" ready: ") || (d.child.exitCode !== null ? Promise.reject(new Error(`ralphd exited: ${d.out()}`)) : false), {
    what: "ralphd in the daemon namespace",
    timeoutMs: 60_000,
  });
  ralphdOut = d.out;
  // The laptop's client agent in the foreground under its own bind audit, so that each
  // traced command ends when it does (one it started would outlive it by design).
  spawnIn("laptop", [process.execPath, cli, "agent", "run"], join(traces, "laptop-agent.strace"));
  await waitFor(() => existsSync(join(HOME.laptop, "client", "agent", "agent.sock")), { what: "the laptop's client agent", timeoutMs: 30_000 });
  const added = await ralph("laptop", ["remote", "add", "box", "--token", laptopToken]);
  assert.equal(added.code, 0, added.stdout + added.stderr);
  assert.match(added.stdout, /remote box added: ralphd box answers/);
  for (const host of ["daemon", "laptop"] as const) {
    const l = await listeners(host);
    assert.deepEqual(l.filter((a) => !isLoopbackSocket(a)), [], `${host} listens on loopback only: ${l.join(" ")}`);
  }
});

let loopId: string;

test("laptop: a 3-story loop runs on the daemon host, its logs follow to completion, every story reaches the origin", { timeout: 150_000 }, async () => {
  git(project.repo, "switch", "-q", "ralph/three");
  loopId = ok(await ralph("laptop", ["start", "task", "--remote", "box"], project.repo), "ralph start");
  const logs = await ralph("laptop", ["logs", loopId, "--follow", "--remote", "box"]);
  assert.equal(logs.code, 0, logs.stdout + logs.stderr);
  assert.match(logs.stdout, /completed/i);
  const status = JSON.parse(ok(await ralph("laptop", ["status", loopId, "--json", "--remote", "box"]), "status")) as { status: string; passed: number; total: number };
  assert.deepEqual({ status: status.status, passed: status.passed, total: status.total }, { status: "completed", passed: 3, total: 3 });
  const prd = JSON.parse(String((await execa("git", ["--git-dir", project.origin, "show", "ralph/three:task/prd.json"])).stdout)) as { userStories: { passes: boolean }[] };
  assert.equal(prd.userStories.length, 3);
  assert.ok(prd.userStories.every((s) => s.passes), "every story passes on the origin");
  const subjects = String((await execa("git", ["--git-dir", project.origin, "log", "--format=%s", "main..ralph/three"])).stdout);
  for (const id of ["S1", "S2", "S3"]) assert.match(subjects, new RegExp(`feat: \\[${id}\\]`));
});

test("laptop: attach --print-url reaches a running loop's opencode through the overlay, and ralph stop stops that loop", { timeout: 150_000 }, async () => {
  // A model that never answers keeps the second loop running while it is attached to.
  await stopChild(model);
  model = await startModel("hang");
  git(project.repo, "switch", "-q", "ralph/stopped");
  const id = ok(await ralph("laptop", ["start", "task", "--remote", "box"], project.repo), "ralph start");
  // The loop runs before its opencode is up and hosted: until then attach
  // says so and exits, and is tried again.
  let attempts = 0;
  let attach: ReturnType<typeof spawnIn> | undefined;
  const url = await waitFor(
    async () => {
      if (!attach || attach.child.exitCode !== null) {
        if (attach && !/has no opencode to attach to \(it is (starting|running)\)/.test(attach.out())) throw new Error(`attach failed: ${attach.out()}`);
        attach = spawnIn("laptop", ["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=bind", "-o", join(traces, `attach-${++attempts}.strace`), process.execPath, cli, "attach", id, "--print-url", "--remote", "box"]);
        return undefined;
      }
      return /^http:\S+$/m.exec(attach.out())?.[0];
    },
    { what: "the attach URL", timeoutMs: 90_000 },
  );
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const password = await waitFor(() => /OPENCODE_SERVER_PASSWORD=(\S+)/.exec(attach!.out())?.[1], { what: "the password", timeoutMs: 10_000 });
  const auth = { authorization: "Basic " + Buffer.from(`opencode:${password}`).toString("base64") };
  // The URL is on the laptop's loopback: ask from inside the laptop namespace.
  const get = async (path: string, headers: Record<string, string> = {}) => {
    const r = await inHost("laptop", ["curl", "-sS", "--max-time", "15", "-o", "-", "-w", "\n%{http_code}", ...Object.entries(headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]), url + path]);
    const lines = r.stdout.split("\n");
    return { status: Number(lines.pop()), body: lines.join("\n") };
  };
  await waitFor(async () => (JSON.parse((await get("/session", auth)).body) as { title: string }[]).some((s) => s.title === "Ralph iteration"), {
    what: "the loop's own session through the attach URL",
    timeoutMs: 30_000,
  });
  assert.equal((await get("/session")).status, 401, "the loop's password still guards it");
  const health = JSON.parse((await get("/global/health", auth)).body) as { healthy: boolean };
  assert.equal(health.healthy, true);
  for (const path of ["/config", "/agent", "/path", "/project/current"]) assert.equal((await get(path, auth)).status, 200, `${path} answers through the overlay, as opencode attach reads it`);
  assert.deepEqual((await listeners("laptop")).filter((a) => !isLoopbackSocket(a)), [], "the attach proxy listens on the laptop's loopback only");
  assert.equal(await stopChild(attach!.child, "SIGINT"), 0, "Ctrl-C closes the attach proxy");

  const stopped = JSON.parse(ok(await ralph("laptop", ["stop", id, "--json", "--remote", "box"]), "ralph stop")) as { status: string };
  assert.equal(stopped.status, "stopped");
  const ls = JSON.parse(ok(await ralph("laptop", ["ls", "--json", "--remote", "box"]), "ralph ls")) as { id: string; status: string }[];
  assert.deepEqual(ls.map((l) => [l.id, l.status]).sort(), [[loopId, "completed"], [id, "stopped"]].sort());
});

test("no process of ralph or ralphd bound anything beyond loopback on the daemon or the laptop, at any moment (every bind() traced)", { timeout: 150_000 }, () => {
  const files = readdirSync(traces).filter((f) => f.startsWith("laptop-") || f.startsWith("daemon-") || f === "ralphd.strace" || f.startsWith("attach-"));
  assert.ok(files.includes("ralphd.strace") && files.some((f) => f.startsWith("attach-")) && files.some((f) => f.startsWith("laptop-")), files.join(" "));
  let seen = 0;
  for (const f of files) {
    const binds = bindsInStrace(readFileSync(join(traces, f), "utf8"));
    seen += binds.length;
    assert.deepEqual(binds.filter((b) => !isLoopbackBind(b)), [], `${f}: no bind beyond loopback`);
  }
  assert.ok(seen > 5, `the audit saw the binds (${seen}): the control API, opencode, the dialers' listeners`);
  const agentBinds = bindsInStrace(readFileSync(join(traces, "laptop-agent.strace"), "utf8"));
  assert.ok(agentBinds.some((b) => b.family === "AF_UNIX" && b.address.startsWith(join(HOME.laptop, "client", "agent"))), "the laptop's agent and its dialer listen on Unix sockets in its RALPH_HOME");
  assert.match(ralphdOut(), /ralphd box ready/);
});

test("no file under the daemon's or the laptop's RALPH_HOME holds an admin secret or another host's private key", { timeout: 150_000 }, () => {
  const password = readFileSync(join(HOME.net, "ziti", "admin-password"), "utf8").trim();
  assert.ok(password.length >= 16);
  const keys = { net: privateKeysUnder(HOME.net), daemon: privateKeysUnder(HOME.daemon), laptop: privateKeysUnder(HOME.laptop) };
  assert.ok(keys.net.length >= 3 && keys.daemon.length >= 1 && keys.laptop.length >= 1, `keys found: ${keys.net.length}/${keys.daemon.length}/${keys.laptop.length}`);
  for (const host of ["daemon", "laptop"] as const) {
    const others = [...keys.net, ...(host === "daemon" ? keys.laptop : keys.daemon)];
    for (const f of filesUnder(HOME[host])) {
      const content = readFileSync(f, "utf8");
      assert.ok(!content.includes(password), `${f} holds no admin password`);
      assert.ok(!/admin-password/.test(content), `${f} names no admin password file`);
      for (const k of others) assert.ok(!content.replace(/\\n/g, "\n").includes(k), `${f} holds no other host's private key`);
    }
  }
});

test("net: ralph ziti status shows the advertised address, the ports and every identity with its role and whether it enrolled", { timeout: 150_000 }, async () => {
  const s = JSON.parse(ok(await ralph("net", ["ziti", "status", "--json"]), "ziti status")) as { advertise: string; identities: { name: string; role: string; enrolled: boolean; online: boolean }[] };
  const byName = Object.fromEntries(s.identities.map((i) => [i.name, i]));
  assert.deepEqual({ role: byName.box?.role, enrolled: byName.box?.enrolled, online: byName.box?.online }, { role: "daemon", enrolled: true, online: true });
  assert.deepEqual({ role: byName.laptop?.role, enrolled: byName.laptop?.enrolled }, { role: "client", enrolled: true });
  const text = ok(await ralph("net", ["ziti", "status"]), "ziti status");
  assert.match(text, new RegExp(`advertised as ${IP.net.replace(/\./g, "\\.")}: controller port ${CTRL_PORT}, router port ${ROUTER_PORT}`));
  assert.match(text, /identity box\tdaemon\tenrolled, online/);
});

test("ralph ls from the laptop's namespace and from the daemon's own host, timed (reported, not asserted)", { timeout: 150_000 }, async (t) => {
  // A client on the daemon's machine: its own RALPH_HOME there, its own token.
  const token = JSON.parse(ok(await ralph("net", ["ziti", "identity", "create", "boxself", "--role", "client", "--json"]), "identity create")) as { tokenFile: string };
  const selfHome = join(HOME.daemon, "client-home");
  const onDaemon = async (args: string[]) => {
    const r = await execa("ip", ["netns", "exec", NS.daemon, process.execPath, cli, ...args], { env: { ...baseEnv("daemon"), RALPH_HOME: selfHome }, reject: false });
    return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  };
  // Named otherwise than the daemon: this identity may dial two daemons' control services
  // (the net host's own "local" one too), so the remote keeps the name's and says which exist.
  const guessed = await onDaemon(["remote", "add", "here", "--token", token.tokenFile]);
  assert.match(guessed.stderr, /this identity may reach ralph-control-box, ralph-control-local; using ralph-control-here; for another: 'ralph remote add OTHER --identity (\S+) --service SERVICE'/);
  const identityFile = /--identity (\S+) --service/.exec(guessed.stderr)![1]!;
  const added = await onDaemon(["remote", "add", "box", "--identity", identityFile, "--service", "ralph-control-box"]);
  assert.equal(added.code, 0, added.stderr);
  const time = async (run: () => Promise<{ code: number; stdout: string; stderr: string }>) => {
    const ms: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const r = await run();
      assert.equal(r.code, 0, r.stderr);
      ms.push(performance.now() - t0);
    }
    return ms.sort((a, b) => a - b)[2]!;
  };
  const laptop = await time(() => inHost("laptop", [process.execPath, cli, "ls", "--json", "--remote", "box"]));
  const daemon = await time(() => onDaemon(["ls", "--json", "--remote", "box"]));
  t.diagnostic(`ralph ls, median of 5: from the laptop namespace ${laptop.toFixed(0)} ms, from the daemon's host ${daemon.toFixed(0)} ms (both through the network host's controller and router)`);
});

test("a revoked laptop loses access within seconds, with a message that says so", { timeout: 150_000 }, async (t) => {
  ok(await ralph("net", ["ziti", "identity", "revoke", "laptop"]), "revoke");
  const t0 = Date.now();
  const r = await ralph("laptop", ["ls", "--remote", "box"]);
  const took = Date.now() - t0;
  assert.notEqual(r.code, 0, r.stdout);
  assert.match(r.stderr, /the controller refused this identity: it was revoked/);
  assert.ok(took < 10_000, `refused in ${took} ms`);
  t.diagnostic(`a revoked laptop's next command failed after ${took} ms`);
});

test("net: --recreate destroys the network and makes a new one; the old daemon's identity is then refused with the reason", { timeout: 150_000 }, async () => {
  const r = await ralph("net", ["ziti", "up", "--advertise", IP.net, "--recreate"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /destroying the network .*every identity, service and enrolment/);
  const status = JSON.parse(ok(await ralph("net", ["ziti", "status", "--json"]), "status")) as { identities: { name: string }[] };
  assert.ok(!status.identities.some((i) => i.name === "box" || i.name === "laptop"), "no identity of the old network is left");
  // The daemon still holds an identity of the old network: its CA signs nothing here any more.
  const check = await ralphdCli(["check", "--json"]);
  assert.notEqual(check.code, 0);
  const controller = (JSON.parse(check.stdout) as { name: string; ok: boolean; detail: string }[]).find((c) => c.name === "controller")!;
  assert.equal(controller.ok, false);
  assert.match(controller.detail, /certificate its CA does not sign .*another network answers there, or the network was recreated/);
});
