// npm run bench -- [--out FILE] [--requests N] [--samples N] [--loops N] [--idle-seconds N] [--only SECTION,...]
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { runClientBench } from "./client.js";
import { runDaemonBench } from "./daemon.js";
import { runOverlayBench } from "./overlay.js";
import { runAccountingBench } from "./unattended.js";
import { runRetentionBench } from "./retention.js";
import { runSandboxBench } from "./sandbox.js";
import { startScriptedModel } from "../src/model/scripted-model.js";
import { ZITI_VERSION } from "../src/ziti/binary.js";
import { zitiDown, zitiUp } from "../src/ziti/network.js";
import { freePort } from "../src/util/ports.js";

const { values } = parseArgs({ options: { out: { type: "string" }, requests: { type: "string", default: "300" }, samples: { type: "string", default: "5" }, loops: { type: "string", default: "30" }, "idle-seconds": { type: "string", default: "60" }, only: { type: "string" } } });
const requests = Number(values.requests);
const samples = Number(values.samples);
if (!Number.isInteger(requests) || requests < 200) throw new Error("--requests must be a whole number of at least 200");
if (!Number.isInteger(samples) || samples < 1) throw new Error("--samples must be a whole number of at least 1");
const loops = Number(values.loops);
if (!Number.isInteger(loops) || loops < 2) throw new Error("--loops must be a whole number of at least 2");
const idleSeconds = Number(values["idle-seconds"]);
if (!Number.isInteger(idleSeconds) || idleSeconds < 10) throw new Error("--idle-seconds must be a whole number of at least 10");
// One section takes a few minutes; the whole bench far longer.
const SECTIONS = ["overlay", "client", "daemon", "accounting", "sandbox", "retention"] as const;
const only = values.only?.split(",") ?? [...SECTIONS];
const unknown = only.filter((o) => !(SECTIONS as readonly string[]).includes(o));
if (unknown.length) throw new Error(`--only takes sections from ${SECTIONS.join(", ")}, not ${unknown.join(", ")}`);
const runs = (section: (typeof SECTIONS)[number]) => only.includes(section);

const machine = `${cpus().length} x ${cpus()[0]?.model ?? "cpu"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ziti ${ZITI_VERSION}`;
const log = (s: string) => process.stderr.write(`==> ${s}\n`);

// A private home (and network) unless the caller chose one; a chosen one is kept.
const ownHome = !process.env.RALPH_HOME;
const home = process.env.RALPH_HOME ?? mkdtempSync(join(tmpdir(), "ralph-bench-"));
process.env.RALPH_HOME = home;
log(`RALPH_HOME=${home}; bringing up the OpenZiti network`);
// Free ports for a private network: the defaults may be taken by the user's own.
const net = await zitiUp(ownHome ? { ctrlPort: await freePort(), routerPort: await freePort() } : {});
const withoutTables = <T extends { tables: string[] }>({ tables: _t, ...figures }: T) => figures;
try {
  const tables: string[] = [];
  const figures: Record<string, unknown> = { machine };
  const record = (name: string, result: { tables: string[] }) => {
    tables.push(...result.tables);
    figures[name] = withoutTables(result);
  };
  if (runs("overlay")) record("overlay", await runOverlayBench({ requests, home, net, log }));
  if (runs("client")) record("client", await runClientBench({ home, samples, idleSeconds, log }));
  if (runs("daemon")) record("daemon", await runDaemonBench({ home, samples, log }));
  if (runs("accounting")) {
    const model = await startScriptedModel({ script: { kind: "ralph-agent" } });
    record("accounting", await runAccountingBench({ model, home, samples, log }).finally(() => model.close()));
  }
  if (runs("sandbox")) {
    const model = await startScriptedModel({ script: { kind: "ralph-agent" } });
    record("sandbox", await runSandboxBench({ model, home, samples, requests, log }).finally(() => model.close()));
  }
  if (runs("retention")) record("retention", await runRetentionBench({ home, loops, log }));
  process.stdout.write(`\nMachine: ${machine}\n\n${tables.join("\n\n")}\n`);
  if (values.out) {
    writeFileSync(values.out, JSON.stringify(figures, null, 2) + "\n");
    log(`figures written to ${values.out}`);
  }
} finally {
  await zitiDown();
  if (ownHome) rmSync(home, { recursive: true, force: true });
}
