import { test } from "node:test";
import assert from "node:assert/strict";
import { withoutTokens } from "../../src/util/tokens.js";

test("session tokens the Ziti SDK logs are taken out of log lines, the rest is kept", () => {
  const token = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjY0Zjk4In0.eyJpc3MiOiJodHRwczovLzEyNy4wLjAuMSIsInN1YiI6IjZjWjk4In0.LcL19-dLFV2Dy0x7JJBkpqYw7nj";
  const line = `time="2026-11-25T19:37:32Z" level=error msg="unable to unbind session for conn" connId=1 error="channel closed" sessionId=${token}`;
  const out = withoutTokens(line);
  assert.ok(!out.includes("eyJ"), out);
  assert.equal(out, line.replace(token, "***"));
  assert.equal(withoutTokens("hosted key eyJ-but-not-a-token"), "hosted key eyJ-but-not-a-token");
});
