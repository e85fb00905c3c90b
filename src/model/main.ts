#!/usr/bin/env node
// Runs the scripted demo model as its own process (for `ralph demo` and tests).
import { Command } from "commander";
import { startScriptedModel } from "./scripted-model.js";

const o = new Command("ralph-demo-model")
  .description("Scripted OpenAI-compatible model server for offline demos and tests (listens on 127.0.0.1)")
  .option("--port <n>", "port (default: a free one)", (v) => Number(v), 0)
  .option("--script <kind>", "ralph-agent | idle | error | hang", "ralph-agent")
  .parse()
  .opts<{ port: number; script: string }>();

const model = await startScriptedModel({ port: o.port, script: { kind: o.script } as never });
process.stdout.write(`listening on http://127.0.0.1:${model.port}\n`);
const shutdown = () => void model.close().then(() => process.exit(0));
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
