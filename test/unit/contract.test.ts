// The control API's contract against the daemon's app, in process: every
// route of the contract is served and nothing else is, refusals carry the
// contract's error envelope, and the typed client rebuilds them as the
// errors the CLI maps to exit codes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { expectOk, controlApi as clientFor } from "../../src/client/api.js";
import { ApiError, ERROR_STATUS, type ErrorCode } from "../../src/contract/errors.js";
import { routes } from "../../src/contract/routes.js";
import { ErrorBodySchema, LoopListSchema } from "../../src/contract/schemas.js";
import { controlApi } from "../../src/daemon/api.js";
import type { LoopManager } from "../../src/daemon/manager.js";
import { ExitCode, exitCodeFor } from "../../src/cli/exit-codes.js";
import { InvalidInputError, NotFoundError, UnavailableError } from "../../src/util/errors.js";

/** Only what these requests reach; anything else fails the test loudly. */
const manager = {
  list: () => [],
  get: (id: string) => {
    throw new ApiError("not_found", `no loop "${id}" on this daemon ('ralph ls' lists them)`);
  },
  start: async () => {
    throw new Error("a refused request must not reach the manager");
  },
} as unknown as LoopManager;

const app = controlApi(manager);
/** The typed client over the app itself, no network. */
const client = clientFor("http://daemon", (input, init) => Promise.resolve(app.request(String(input), init)));

const openApiPath = (p: string) => p.replace(/\{(\w+)\}/g, ":$1");

test("the daemon serves every route of the contract, and no other", () => {
  const served = new Set(app.routes.filter((r) => r.method !== "ALL").map((r) => `${r.method} ${r.path}`));
  const contract = new Set(Object.values(routes).map((r) => `${r.method.toUpperCase()} ${openApiPath(r.path)}`));
  assert.deepEqual([...served].sort(), [...contract].sort());
});

test("a refused body gets the contract's error envelope, naming the field, and reaches no handler", async () => {
  for (const [body, pattern] of [
    [JSON.stringify({ origin: "-x", branch: "b", taskDir: "t" }), /^origin: origin must not start with '-'/],
    [JSON.stringify({ origin: "o", branch: "b", taskDir: "t", extra: 1 }), /Unrecognized key/],
    ["{not json", /the body is not valid JSON/],
  ] as const) {
    const res = await app.request("/loops", { method: "POST", headers: { "content-type": "application/json" }, body });
    assert.equal(res.status, 400, body);
    const parsed = ErrorBodySchema.parse(await res.json());
    assert.equal(parsed.error.code, "invalid_request");
    assert.match(parsed.error.message, pattern);
  }
});

test("an unknown route and a wrong method answer 404 and 405 (with Allow) in the same envelope", async () => {
  const missing = await app.request("/nowhere");
  assert.equal(missing.status, 404);
  assert.equal(ErrorBodySchema.parse(await missing.json()).error.code, "not_found");
  const wrong = await app.request("/loops", { method: "PUT" });
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get("allow"), "GET, HEAD, POST");
});

test("the typed client returns the answer of a route, and rebuilds a refusal as the daemon's ApiError", async () => {
  assert.deepEqual(LoopListSchema.parse(await expectOk("here", client.loops.$get())), { loops: [] });
  await assert.rejects(expectOk("here", client.loops[":id"].$get({ param: { id: "nope" } })), (e: unknown) => {
    assert.ok(e instanceof ApiError);
    assert.equal(e.code, "not_found");
    assert.equal(e.message, `here: no loop "nope" on this daemon ('ralph ls' lists them)`);
    assert.equal(exitCodeFor(e), ExitCode.NotFound);
    return true;
  });
});

test("each kind of failure has one exit code, and every daemon error code has one", () => {
  assert.equal(exitCodeFor(new InvalidInputError("x")), ExitCode.InvalidInput);
  assert.equal(exitCodeFor(new NotFoundError("x")), ExitCode.NotFound);
  assert.equal(exitCodeFor(new UnavailableError("x")), ExitCode.Unavailable);
  assert.equal(exitCodeFor(new Error("x")), ExitCode.Error);
  for (const code of Object.keys(ERROR_STATUS) as ErrorCode[]) {
    const exit = exitCodeFor(new ApiError(code, "x"));
    assert.ok(Object.values(ExitCode).includes(exit), code);
    assert.equal(exit === ExitCode.Error, code === "internal", `${code} -> ${exit}`);
  }
});
