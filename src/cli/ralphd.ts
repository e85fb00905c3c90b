#!/usr/bin/env node
import { Command } from "commander";
import { reportError } from "./output.js";
import { VERSION } from "../version.js";

const program = new Command("ralphd")
  .description("The Ralph Remote daemon: runs loops for remote clients over OpenZiti.")
  .version(VERSION);
program.exitOverride();

try {
  await program.parseAsync(process.argv);
} catch (err) {
  const e = err as { code?: string; exitCode?: number };
  process.exitCode = typeof e.code === "string" && e.code.startsWith("commander.") ? (e.exitCode === 0 ? 0 : 2) : reportError(err);
}
