// npm run bench -- [--out FILE] [--requests N]
import { writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { parseArgs } from "node:util";
import { runOverlayBench } from "./overlay.js";
import { ZITI_VERSION } from "../src/ziti/binary.js";

const { values } = parseArgs({ options: { out: { type: "string" }, requests: { type: "string", default: "300" } } });
const requests = Number(values.requests);
if (!Number.isInteger(requests) || requests < 200) throw new Error("--requests must be a whole number of at least 200");

const machine = `${cpus().length} x ${cpus()[0]?.model ?? "cpu"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ziti ${ZITI_VERSION}`;
const log = (s: string) => process.stderr.write(`==> ${s}\n`);
const overlay = await runOverlayBench({ requests, log });
process.stdout.write(`\nMachine: ${machine}\n\n${overlay.tables.join("\n\n")}\n`);
if (values.out) {
  const { tables: _tables, ...figures } = overlay;
  writeFileSync(values.out, JSON.stringify({ machine, ...figures }, null, 2) + "\n");
  log(`figures written to ${values.out}`);
}
