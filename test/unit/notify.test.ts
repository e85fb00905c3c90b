import { after, test as nodeTest } from "node:test";
import assert from "node:assert/strict";
import {
  Notifier,
  NotifyTargetSchema,
  redact,
  targetLabel,
  type Notification,
  type NotifyKind,
  type NotifyTarget,
} from "../../src/daemon/notify.js";
import { deadPort, startReceiver } from "../support/http-receiver.js";

/** A hang (an idle() that never comes) fails its own test instead of stalling the file. */
const test = (name: string, fn: () => Promise<void> | void) => nodeTest(name, { timeout: 15_000 }, fn);

const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const close of closers) await close();
});

async function receiver() {
  const r = await startReceiver();
  closers.push(r.close);
  return r;
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const note = (kind: NotifyKind, loopId = "1a2b3c4d", details: Record<string, unknown> = {}): Notification => ({
  kind,
  daemon: "box",
  loopId,
  title: `Ralph loop ${loopId} ${kind}`,
  message: `Loop ${loopId} ${kind}.`,
  time: "2025-01-02T03:04:05.000Z",
  details,
});

const fast = { minRetryDelayMs: 10, maxRetryDelayMs: 50, timeoutMs: 2000 };
const target = (t: unknown): NotifyTarget => NotifyTargetSchema.parse(t);

function notifier(targets: NotifyTarget[], opts: ConstructorParameters<typeof Notifier>[2] = {}) {
  const logs: string[] = [];
  const n = new Notifier(targets, (line) => logs.push(line), { ...fast, ...opts });
  closers.push(() => n.close(0));
  return { n, logs };
}

test("a webhook gets the notification as JSON with its own headers", async () => {
  const r = await receiver();
  const { n, logs } = notifier([target({ kind: "webhook", url: `${r.url}/hook`, headers: { "X-Team": "ops-team" } })]);
  const details = { branch: "ralph/fix-1", origin: "git@example.com:o/r.git", passed: 3, total: 5, iterations: 7, cost: 0.42 };
  n.notify(note("completed", "1a2b3c4d", details));
  await n.idle();

  assert.equal(r.requests.length, 1);
  const [req] = r.requests;
  assert.equal(req!.method, "POST");
  assert.equal(req!.path, "/hook");
  assert.equal(req!.headers["content-type"], "application/json");
  assert.equal(req!.headers["user-agent"], "ralph-remote");
  assert.equal(req!.headers["x-team"], "ops-team");
  assert.equal(req!.headers.authorization, undefined);
  assert.equal(
    req!.body,
    '{"kind":"completed","daemon":"box","loopId":"1a2b3c4d","title":"Ralph loop 1a2b3c4d completed","message":"Loop 1a2b3c4d completed.",' +
      '"time":"2025-01-02T03:04:05.000Z","branch":"ralph/fix-1","origin":"git@example.com:o/r.git","passed":3,"total":5,"iterations":7,"cost":0.42}',
  );
  assert.deepEqual(logs, []);
});

test("an ntfy target gets a plain-text body with Title, Priority, Tags and a bearer token", async () => {
  const r = await receiver();
  const { n } = notifier([target({ kind: "ntfy", url: `${r.url}/ralph`, token: "tk_ntfy_9f8e7d" })]);
  n.notify({ ...note("failed"), title: "Ralph loop 1a2b3c4d failed — café ✓\n", message: "Loop failed: 2/5 tests pass.\nCafé ✓ costs $1.20" });
  await n.idle();

  assert.equal(r.requests.length, 1);
  const [req] = r.requests;
  assert.equal(req!.method, "POST");
  assert.equal(req!.path, "/ralph");
  assert.equal(req!.body, "Loop failed: 2/5 tests pass.\nCafé ✓ costs $1.20");
  assert.equal(req!.headers["content-type"], "text/plain; charset=utf-8");
  assert.equal(req!.headers.title, "Ralph loop 1a2b3c4d failed ? caf? ??");
  assert.equal(req!.headers.priority, "4");
  assert.equal(req!.headers.tags, "x");
  assert.equal(req!.headers.authorization, "Bearer tk_ntfy_9f8e7d");
});

test("ntfy priority and tag follow the kind", async () => {
  const r = await receiver();
  const kinds: NotifyKind[] = ["completed", "failed", "exhausted", "budget", "stalled", "asked", "stopped", "test"];
  const { n } = notifier([target({ kind: "ntfy", url: `${r.url}/ralph`, events: kinds })]);
  for (const k of kinds) n.notify(note(k));
  await n.idle();
  assert.deepEqual(
    r.requests.map((q) => [q.body, q.headers.priority, q.headers.tags, q.headers.authorization]),
    [
      ["Loop 1a2b3c4d completed.", "3", "white_check_mark", undefined],
      ["Loop 1a2b3c4d failed.", "4", "x", undefined],
      ["Loop 1a2b3c4d exhausted.", "4", "warning", undefined],
      ["Loop 1a2b3c4d budget.", "4", "moneybag", undefined],
      ["Loop 1a2b3c4d stalled.", "4", "hourglass", undefined],
      ["Loop 1a2b3c4d asked.", "4", "question", undefined],
      ["Loop 1a2b3c4d stopped.", "2", "stop_sign", undefined],
      ["Loop 1a2b3c4d test.", "3", "bell", undefined],
    ],
  );
});

test("each target gets only its kinds (and 'test'); without a list, the defaults (never 'stopped')", async () => {
  const r = await receiver();
  const { n } = notifier([
    target({ kind: "webhook", url: `${r.url}/default` }),
    target({ kind: "webhook", url: `${r.url}/picky`, events: ["failed", "stopped"] }),
    target({ kind: "ntfy", url: `${r.url}/phone` }),
  ]);
  for (const k of ["completed", "stopped", "failed", "budget", "stalled", "asked", "exhausted", "test"] as const) n.notify(note(k));
  await n.idle();
  const got = (path: string) => r.requests.filter((q) => q.path === path).map((q) => q.body.match(/completed|stopped|failed|budget|stalled|asked|exhausted|test/)?.[0]);
  const defaults = ["completed", "failed", "budget", "stalled", "asked", "exhausted", "test"];
  assert.deepEqual(got("/default"), defaults);
  assert.deepEqual(got("/phone"), defaults);
  assert.deepEqual(got("/picky"), ["stopped", "failed", "test"]);
});

test("a 503 is retried with backoff until it succeeds; 408 and 429 are retried too", async () => {
  const r = await receiver();
  r.answer(503, 503);
  const { n, logs } = notifier([target({ kind: "webhook", url: `${r.url}/hook` })]);
  n.notify(note("completed"));
  await n.idle();
  assert.equal(r.requests.length, 3);
  assert.equal(new Set(r.requests.map((q) => q.body)).size, 1);
  assert.deepEqual(logs, []);

  r.answer(408, 429);
  n.notify(note("failed"));
  await n.idle();
  assert.equal(r.requests.length, 6);
  assert.deepEqual(logs, []);
});

test("a 400 is not retried and the failure is logged once with the target's label", async () => {
  const r = await receiver();
  r.answer(400);
  const { n, logs } = notifier([target({ kind: "webhook", url: `${r.url}/hook` })]);
  n.notify(note("failed"));
  await n.idle();
  assert.equal(r.requests.length, 1);
  assert.deepEqual(logs, [`notify webhook ${r.url}: "failed" for loop 1a2b3c4d failed after 1 attempt(s): HTTP 400`]);
});

test("retries are bounded and a 5xx that never ends is logged after the last attempt", async () => {
  const r = await receiver();
  r.answer(500, 500, 500, 500, 500);
  const { n, logs } = notifier([target({ kind: "webhook", name: "ops", url: `${r.url}/hook` })], { retries: 2 });
  n.notify(note("stalled", "77"));
  await n.idle();
  assert.equal(r.requests.length, 3);
  assert.deepEqual(logs, ['notify ops: "stalled" for loop 77 failed after 3 attempt(s): HTTP 500']);
});

test("log lines and results never show a target's secrets", async () => {
  const r = await receiver();
  r.answer(...Array<number>(12).fill(500));
  const targets = [
    target({ kind: "webhook", url: `http://user:secretpw@127.0.0.1:${r.port}/hook?token=abc123` }),
    target({ kind: "webhook", url: `${r.url}/hook2`, headers: { authorization: "Bearer s3cr3t" } }),
    target({ kind: "ntfy", url: `${r.url}/ralph`, token: "tk_ntfy_9f8e7d" }),
  ];
  const { n, logs } = notifier(targets, { retries: 1 });
  n.notify(note("failed"));
  await n.idle();
  const results = await n.test(note("test", ""));

  // The credentials did go out, as Basic auth (fetch refuses userinfo in a URL) and as given.
  const sent = (path: string) => r.requests.find((q) => q.path === path)!.headers.authorization;
  assert.equal(sent("/hook?token=abc123"), `Basic ${Buffer.from("user:secretpw").toString("base64")}`);
  assert.equal(sent("/hook2"), "Bearer s3cr3t");
  assert.equal(sent("/ralph"), "Bearer tk_ntfy_9f8e7d");

  const labels = [`webhook ${r.url}`, `webhook ${r.url}`, `ntfy ${r.url}`];
  assert.deepEqual(
    logs.toSorted(),
    labels
      .flatMap((label) => [`notify ${label}: "failed" for loop 1a2b3c4d failed after 2 attempt(s): HTTP 500`, `notify ${label}: "test" for loop - failed after 1 attempt(s): HTTP 500`])
      .toSorted(),
  );
  assert.deepEqual(results.map((x) => x.target), labels);
  const text = JSON.stringify([logs, results]);
  for (const secret of ["secretpw", "abc123", "s3cr3t", "tk_ntfy_9f8e7d"]) assert.ok(!text.includes(secret), `${secret} leaked: ${text}`);
});

test("redact() removes URL userinfo, query values and the given secrets", () => {
  assert.equal(
    redact('POST http://user:secretpw@h:8/hook?token=abc123&x=1#f failed: "Bearer s3cr3t" s3cr3t%3F', ["s3cr3t?", "s3cr3t", ""]),
    'POST http://***@h:8/hook?token=***&x=***#f failed: "Bearer ***" ***',
  );
  assert.equal(redact("connect ECONNREFUSED 127.0.0.1:4000", ["tk"]), "connect ECONNREFUSED 127.0.0.1:4000");
});

test("targetLabel() is the name, or the kind and origin, without path, userinfo or query", () => {
  assert.equal(targetLabel(target({ kind: "ntfy", url: "https://ntfy.example.com/ralph?auth=xyz", name: "phone" })), "phone");
  assert.equal(targetLabel(target({ kind: "ntfy", url: "https://ntfy.example.com/ralph?auth=xyz" })), "ntfy https://ntfy.example.com");
  assert.equal(targetLabel(target({ kind: "webhook", url: "http://u:pw@127.0.0.1:9000/a/b?t=1" })), "webhook http://127.0.0.1:9000");
});

test("a dead or hanging target does not delay delivery to a working one", async () => {
  const good = await receiver();
  const slow = await receiver();
  slow.hold();
  const dead = await deadPort();
  const { n, logs } = notifier(
    [
      target({ kind: "webhook", url: `http://127.0.0.1:${dead}/dead` }),
      target({ kind: "webhook", url: `${slow.url}/slow` }),
      target({ kind: "webhook", url: `${good.url}/good` }),
    ],
    { retries: 2, minRetryDelayMs: 300, maxRetryDelayMs: 1000, timeoutMs: 10_000 },
  );
  for (const id of ["a", "b", "c"]) n.notify(note("completed", id));
  await waitFor(() => good.requests.length === 3, "the working target's three notifications");
  assert.deepEqual(good.requests.map((q) => JSON.parse(q.body).loopId), ["a", "b", "c"]);
  assert.equal(slow.requests.length, 1, "the hanging target is still on its first notification");
  assert.deepEqual(logs, [], "the dead target is still retrying");

  slow.release();
  await n.idle();
  assert.equal(slow.requests.length, 3);
  assert.equal(logs.length, 3);
  // The first gets its retries; the ones after it one attempt each, while the target stays dead.
  for (const [i, [id, attempts]] of ([["a", 3], ["b", 1], ["c", 1]] as const).entries()) {
    assert.match(logs[i]!, new RegExp(`^notify webhook http://127\\.0\\.0\\.1:${dead}: "completed" for loop ${id} failed after ${attempts} attempt\\(s\\): fetch failed: connect ECONNREFUSED`));
  }
});

test("notify() returns at once while the receiver is slow, and keeps order", async () => {
  const r = await receiver();
  r.hold();
  const { n } = notifier([target({ kind: "webhook", url: `${r.url}/hook` })]);
  const realFetch = globalThis.fetch;
  let fetched = 0;
  globalThis.fetch = (...args) => (fetched++, realFetch(...args));
  try {
    const started = performance.now();
    assert.equal(n.notify(note("completed", "first")), undefined);
    n.notify(note("completed", "second"));
    assert.ok(performance.now() - started < 50, "notify() did not wait");
    assert.equal(fetched, 0, "no request work happens inside notify()");
    await waitFor(() => r.requests.length === 1, "the first request");
  } finally {
    globalThis.fetch = realFetch;
  }
  r.release();
  await n.idle();
  assert.deepEqual(r.requests.map((q) => JSON.parse(q.body).loopId), ["first", "second"]);
});

test("a full queue drops its oldest notification and says so", async () => {
  const r = await receiver();
  r.hold();
  const { n, logs } = notifier([target({ kind: "webhook", url: `${r.url}/hook` })], { maxQueue: 2 });
  n.notify(note("completed", "loop-1"));
  await waitFor(() => r.requests.length === 1, "loop-1 in flight");
  for (const id of ["loop-2", "loop-3", "loop-4"]) n.notify(note("completed", id));
  assert.deepEqual(logs, [`notify webhook ${r.url}: queue full (2), dropped the oldest: "completed" for loop loop-2`]);
  r.release();
  await n.idle();
  assert.deepEqual(r.requests.map((q) => JSON.parse(q.body).loopId), ["loop-1", "loop-3", "loop-4"]);
});

test("test() sends to every target regardless of its kinds and reports each", async () => {
  const r = await receiver();
  const dead = await deadPort();
  const { n, logs } = notifier([
    target({ kind: "webhook", url: `${r.url}/hook`, events: ["failed"] }),
    target({ kind: "ntfy", name: "phone", url: `http://127.0.0.1:${dead}/ralph`, token: "tk_ntfy_9f8e7d" }),
  ]);
  const results = await n.test(note("test", ""));
  assert.equal(results.length, 2);
  assert.deepEqual(results[0], { target: `webhook ${r.url}`, ok: true, attempts: 1 });
  assert.equal(results[1]!.target, "phone");
  assert.equal(results[1]!.ok, false);
  assert.equal(results[1]!.attempts, 1, "a test tries each target once: it takes one attempt's time at most");
  assert.match(results[1]!.error!, /^fetch failed: connect ECONNREFUSED/);
  assert.equal(r.requests.length, 1);
  assert.equal(JSON.parse(r.requests[0]!.body).kind, "test");
  assert.match(logs.join("\n"), /^notify phone: "test" for loop - failed after 1 attempt\(s\): fetch failed: connect ECONNREFUSED/);
});

test("close() drains the queues, then accepts nothing more", async () => {
  const r = await receiver();
  r.hold();
  const { n, logs } = notifier([target({ kind: "webhook", url: `${r.url}/hook` })]);
  for (const id of ["a", "b", "c"]) n.notify(note("completed", id));
  await waitFor(() => r.requests.length === 1, "the first request");
  const closed = n.close(5000);
  n.notify(note("completed", "late"));
  r.release();
  await closed;
  assert.deepEqual(r.requests.map((q) => JSON.parse(q.body).loopId), ["a", "b", "c"]);
  assert.deepEqual(logs, []);
});

test("close() gives up after its grace time and logs how many it dropped", async () => {
  const r = await receiver();
  r.hold();
  const { n, logs } = notifier([target({ kind: "webhook", url: `${r.url}/hook` })]);
  for (const id of ["a", "b", "c"]) n.notify(note("completed", id));
  await waitFor(() => r.requests.length === 1, "the first request");
  const started = performance.now();
  await n.close(50);
  assert.ok(performance.now() - started < 2000, "close() did not wait for the hanging receiver");
  assert.deepEqual(logs, ["notify: closed after 50 ms, dropped 3 undelivered notification(s)"]);
  r.release();
  assert.equal(r.requests.length, 1);
});

test("the target schema refuses non-http URLs, unknown keys and bad values", () => {
  assert.equal(target({ kind: "webhook", url: "https://hooks.example.com/x" }).kind, "webhook");
  assert.equal(target({ kind: "ntfy", url: "http://ntfy.local/ralph", token: "tk_1", events: ["asked"], name: "phone" }).kind, "ntfy");
  const bad = [
    { kind: "webhook", url: "ftp://example.com/x" },
    { kind: "webhook", url: "file:///etc/passwd" },
    { kind: "ntfy", url: "javascript:alert(1)" },
    { kind: "webhook", url: "not a url" },
    { kind: "webhook", url: "https://example.com/x", token: "t" },
    { kind: "ntfy", url: "https://example.com/x", headers: {} },
    { kind: "webhook", url: "https://example.com/x", evnts: ["failed"] },
    { kind: "webhook", url: "https://example.com/x", events: [] },
    { kind: "webhook", url: "https://example.com/x", events: ["done"] },
    { kind: "webhook", url: "https://example.com/x", headers: { "x-a": "v\r\nx-b: injected" } },
    { kind: "ntfy", url: "https://example.com/x", token: "" },
    { kind: "email", url: "https://example.com/x" },
  ];
  for (const t of bad) assert.equal(NotifyTargetSchema.safeParse(t).success, false, JSON.stringify(t));
  assert.match(NotifyTargetSchema.safeParse(bad[0]).error!.issues[0]!.message, /http:\/\/ or https:\/\//);
  assert.match(NotifyTargetSchema.safeParse(bad[4]).error!.issues[0]!.message, /Unrecognized key.*token/);
});

/** A target that takes every connection and never answers. */
async function silentTarget(): Promise<string> {
  const { createServer } = await import("node:net");
  const held: import("node:net").Socket[] = [];
  const server = createServer((s) => held.push(s));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  closers.push(async () => {
    for (const s of held) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return `http://127.0.0.1:${(server.address() as import("node:net").AddressInfo).port}/hook`;
}

test("a target that never answers holds a test to one bounded attempt, says so, and costs each later notification one attempt", async () => {
  const url = await silentTarget();
  // The defaults: a few seconds for the whole test.
  const logs: string[] = [];
  const defaults = new Notifier([target({ kind: "webhook", name: "silent", url })], (l) => logs.push(l));
  closers.push(() => defaults.close(0));
  const t0 = Date.now();
  const [result] = await defaults.test(note("test", ""));
  const took = Date.now() - t0;
  assert.deepEqual({ ...result, error: undefined }, { target: "silent", ok: false, attempts: 1, error: undefined });
  assert.match(result!.error!, /timed out after 3000 ms/);
  assert.ok(took >= 2900 && took < 4500, `one attempt of 3 s, not more (took ${took} ms)`);
  // Queued deliveries: the first gets its retries, the ones after it one attempt each while the target stays silent.
  const { n, logs: queued } = notifier([target({ kind: "webhook", name: "silent", url })], { retries: 2, timeoutMs: 200 });
  n.notify(note("failed", "00000001"));
  n.notify(note("failed", "00000002"));
  await n.idle();
  assert.ok(queued.some((l) => /loop 00000001 failed after 3 attempt\(s\): timed out after 200 ms/.test(l)), queued.join("\n"));
  assert.ok(queued.some((l) => /loop 00000002 failed after 1 attempt\(s\)/.test(l)), queued.join("\n"));
});
