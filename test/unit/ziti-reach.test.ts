// How a failed connection to a controller is named: each cause as itself.
import { test } from "node:test";
import assert from "node:assert/strict";
import { unreachable } from "../../src/ziti/reach.js";

const URL_ = "https://ziti.example.com:1280/edge/client/v1";
const failed = (cause: Record<string, unknown>) => Object.assign(new TypeError("fetch failed"), { cause });

test("a refused connection is not a refused identity", () => {
  const e = unreachable(failed({ code: "ECONNREFUSED" }), URL_);
  assert.equal(e.kind, "refused");
  assert.match(e.message, /ziti\.example\.com:1280: connection refused \(nothing listens there/);
  assert.doesNotMatch(e.message, /revoked/);
});

test("a certificate for other names says which names it has and which was used", () => {
  const e = unreachable(failed({ code: "ERR_TLS_CERT_ALTNAME_INVALID", host: "ziti.example.com", cert: { subjectaltname: "IP Address:10.0.0.1, DNS:localhost" } }), URL_);
  assert.equal(e.kind, "name-mismatch");
  assert.match(e.message, /reached as "ziti\.example\.com" but its certificate names IP Address:10\.0\.0\.1, DNS:localhost/);
  assert.match(e.message, /--advertise/);
});

test("an unknown CA, a timeout, an unresolvable name and no route are each named", () => {
  assert.equal(unreachable(failed({ code: "SELF_SIGNED_CERT_IN_CHAIN" }), URL_).kind, "untrusted");
  assert.equal(unreachable(failed({ code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" }), URL_).kind, "untrusted");
  assert.equal(unreachable(failed({ code: "UND_ERR_CONNECT_TIMEOUT" }), URL_).kind, "timeout");
  assert.equal(unreachable(Object.assign(new Error("The operation was aborted due to timeout"), { name: "TimeoutError" }), URL_).kind, "timeout");
  assert.equal(unreachable(failed({ code: "ENOTFOUND" }), URL_).kind, "unresolved");
  assert.equal(unreachable(failed({ code: "EHOSTUNREACH" }), URL_).kind, "unroutable");
  const other = unreachable(failed({ code: "EPROTO" }), URL_, "(hint)");
  assert.equal(other.kind, "other");
  assert.match(other.message, /\(EPROTO\) \(hint\)$/);
});
