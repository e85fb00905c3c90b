// Text from outside cannot drive the terminal: every control character is
// shown escaped by the output layer, the project's own colours still draw,
// and no text can forge them.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { neutralize, style } from "../../src/cli/output.js";
import { SayRequestSchema } from "../../src/contract/schemas.js";
import { firstControl, utf8 } from "../../src/util/text.js";

const HOSTILE = "Inj \u001b]0;pwned\u0007 \u001b[2J\u001b[31mRED\u009b6n \u202etxt.exe";

test("control characters, ANSI and OSC sequences, C1 controls and bidi overrides are shown escaped; newlines and tabs stay", () => {
  assert.equal(neutralize(HOSTILE), "Inj \\x1b]0;pwned\\x07 \\x1b[2J\\x1b[31mRED\\x9b6n \\u202etxt.exe");
  assert.equal(neutralize("line one\n\tline two"), "line one\n\tline two");
  assert.equal(neutralize("carriage\rreturn\u0000nul\u007fdel"), "carriage\\x0dreturn\\x00nul\\x7fdel");
});

test("no string comes out of neutralize holding a character that drives a terminal (property)", () => {
  fc.assert(
    fc.property(fc.string({ unit: "binary" }), (s) => {
      const out = neutralize(s);
      assert.doesNotMatch(out, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
    }),
  );
});

test("the project's colours are marks, not escapes, until the output layer draws them", () => {
  const red = style.red("error:");
  assert.ok(!red.includes("\u001b"), "no escape in what a command builds");
  assert.ok(red.includes("error:"));
  // A string that imitates a mark without its secret stays text.
  const forged = "\ue00000000000031mred";
  assert.equal(neutralize(forged), forged);
});

test("guidance is plain text: control characters are refused where they are, by the CLI's check and the daemon's schema alike", () => {
  assert.deepEqual(firstControl("ok\nfine\tstill"), undefined);
  assert.deepEqual(firstControl("bell\u0007"), { offset: 4, hex: "0x07" });
  const r = SayRequestSchema.safeParse({ text: "go on \u001b[2J now" });
  assert.equal(r.success, false);
  assert.match(r.error!.issues[0]!.message, /control character 0x1b at offset 6: guidance is plain text/);
  assert.equal(SayRequestSchema.safeParse({ text: "two\nlines\tand a tab" }).success, true);
  assert.equal(utf8(Buffer.from([0x68, 0x69, 0xff])), undefined, "invalid UTF-8 is refused, not turned into U+FFFD");
  assert.equal(utf8(Buffer.from("héllo")), "héllo");
});
