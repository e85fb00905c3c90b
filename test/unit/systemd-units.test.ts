// The systemd units shipped in contrib/systemd: their structure always, and
// `systemd-analyze verify` where systemd is installed. Without it the test
// says so in its output (a diagnostic), rather than passing as if verified.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";

const dir = join(process.cwd(), "contrib", "systemd");
const units = readdirSync(dir).filter((f) => f.endsWith(".service"));

/** `[Section]` -> key -> values, as systemd reads unit files (comments and blank lines skipped). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#") || line.startsWith(";")) continue;
    const section = /^\[(\w+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1]!, current);
      continue;
    }
    const kv = /^(\w+)=(.*)$/.exec(line);
    assert.ok(kv && current, `not a unit-file line: ${line}`);
    current.set(kv[1]!, [...(current.get(kv[1]!) ?? []), kv[2]!]);
  }
  return sections;
}

test("the shipped units are ralphd's and the network's", () => {
  assert.deepEqual(units.sort(), ["ralph-ziti.service", "ralphd.service"]);
});

for (const unit of units) {
  test(`${unit}: runs as its own user with a private RALPH_HOME, absolute commands, and can be enabled`, () => {
    const u = parseUnit(readFileSync(join(dir, unit), "utf8"));
    assert.ok(u.get("Unit")?.get("Description")?.[0], "a description");
    const service = u.get("Service")!;
    assert.ok(service, "a [Service] section");
    for (const key of ["ExecStart", "ExecStartPre", "ExecStop"]) for (const cmd of service.get(key) ?? []) assert.match(cmd, /^\//, `${key} is an absolute path`);
    assert.equal(service.get("User")?.[0], "ralph", "not root");
    assert.match(service.get("Environment")?.join(" ") ?? "", /RALPH_HOME=\/var\/lib\/ralph/);
    assert.equal(service.get("NoNewPrivileges")?.[0], "yes");
    assert.equal(service.get("UMask")?.[0], "0077", "files it writes are private");
    assert.equal(u.get("Install")?.get("WantedBy")?.[0], "multi-user.target");
  });
}

test("systemd-analyze verify accepts every unit", async (t) => {
  const which = await execa("systemd-analyze", ["--version"], { reject: false });
  if (which.failed) {
    t.diagnostic("systemd-analyze is not installed here: only the structure above was checked; install systemd to verify the units fully");
    return;
  }
  const r = await execa("systemd-analyze", ["verify", ...units.map((f) => join(dir, f))], { reject: false, all: true });
  assert.equal(r.exitCode, 0, r.all);
  assert.equal(String(r.all).trim(), "", `no warnings: ${r.all}`);
});
