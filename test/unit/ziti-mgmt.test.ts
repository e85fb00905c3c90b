import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync, mkdtempSync, chmodSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ZitiApiError, controllerError, servicePolicyBody } from "../../src/ziti/mgmt.js";
import { ensureZitiBinary } from "../../src/ziti/binary.js";
import { UnavailableError } from "../../src/util/errors.js";

test("policies grant by role attribute with no posture checks", () => {
  assert.deepEqual(servicePolicyBody("p", "Dial", ["#ralph-client"], ["#ralph-service"]), {
    name: "p",
    type: "Dial",
    semantic: "AnyOf",
    identityRoles: ["#ralph-client"],
    serviceRoles: ["#ralph-service"],
    postureCheckRoles: [],
  });
});

test("a refused call carries the controller's code, message and cause, not the query", () => {
  const err = controllerError(
    400,
    "Bad Request",
    { data: undefined, error: { code: "COULD_NOT_VALIDATE", message: "The supplied request contains an invalid document", cause: { reason: "name is required" } } },
    "POST",
    "/services?limit=1",
  );
  assert.ok(err instanceof ZitiApiError);
  assert.equal(err.status, 400);
  assert.equal(err.code, "COULD_NOT_VALIDATE");
  assert.equal(err.message, "controller refused POST /services: The supplied request contains an invalid document (name is required)");
});

test("a refused call without a body falls back to the HTTP status text", () => {
  const err = controllerError(401, "Unauthorized", { data: undefined }, "GET", "/identities");
  assert.equal(err.code, "UNKNOWN");
  assert.equal(err.message, "controller refused GET /identities: Unauthorized");
});

test("RALPH_ZITI_BIN must be an executable file, and the error says how to fix it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ralph-zbin-"));
  const notExec = join(dir, "ziti");
  writeFileSync(notExec, "");
  chmodSync(notExec, 0o644);
  const saved = process.env.RALPH_ZITI_BIN;
  try {
    process.env.RALPH_ZITI_BIN = notExec;
    await assert.rejects(ensureZitiBinary(), /RALPH_ZITI_BIN=.* is not an executable file; fix the path or unset it/);
    writeFileSync(notExec, "#!/bin/sh\nexit 3\n");
    chmodSync(notExec, 0o755);
    await assert.rejects(ensureZitiBinary(), /does not run .* version' \(exit 3\); point it at ziti v1\.7\.2 or unset it/);
    writeFileSync(notExec, "#!/bin/sh\necho v1.7.2\n");
    assert.equal(await ensureZitiBinary(), notExec);
  } finally {
    if (saved === undefined) delete process.env.RALPH_ZITI_BIN;
    else process.env.RALPH_ZITI_BIN = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});

test("without Go, building ziti fails at once and says what to install", async () => {
  const saved = { PATH: process.env.PATH, RALPH_CACHE_DIR: process.env.RALPH_CACHE_DIR, RALPH_ZITI_BIN: process.env.RALPH_ZITI_BIN };
  const empty = mkdtempSync(join(tmpdir(), "ralph-nogo-"));
  try {
    process.env.PATH = empty;
    process.env.RALPH_CACHE_DIR = empty;
    delete process.env.RALPH_ZITI_BIN;
    await assert.rejects(ensureZitiBinary(), (e: Error) => e instanceof UnavailableError && /needs the Go toolchain .*install Go .*or set RALPH_ZITI_BIN/.test(e.message));
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    rmSync(empty, { recursive: true, force: true });
  }
});
