#!/usr/bin/env node
import { Command } from "commander";
import { loadDaemonConfig } from "../daemon/config.js";
import { checkDaemon } from "../daemon/check.js";
import { runDaemon } from "../daemon/main.js";
import { CliError, ExitCode } from "./exit-codes.js";
import { endQuietlyOnClosedPipe, printJson, reportError, style } from "./output.js";
import { VERSION } from "../version.js";
import { exitOnSignalUnlessHandled } from "./signals.js";

const config = (path?: string) => {
  try {
    return loadDaemonConfig(path);
  } catch (err) {
    throw new CliError((err as Error).message, ExitCode.InvalidInput);
  }
};

const program = new Command("ralphd")
  .description("The Ralph Remote daemon: runs loops for remote clients, reachable only over OpenZiti")
  .version(VERSION)
  .option("--config <file>", "daemon config (default: RALPH_HOME/daemon/config.json, written by 'ralph ziti up')")
  .action(async (o: { config?: string }) => {
    await runDaemon(config(o.config), (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`));
  });
program.exitOverride();
exitOnSignalUnlessHandled();
endQuietlyOnClosedPipe();

program
  .command("check")
  .description("Verify git, opencode, the host helper, the identity (it logs in and may bind its two services) and the workspace; exit 0 only when ready")
  .option("--config <file>", "daemon config")
  .option("--json", "print the checks as JSON")
  .action(async (o: { config?: string; json?: boolean }) => {
    const results = await checkDaemon(config(o.config ?? program.opts<{ config?: string }>().config));
    if (o.json) printJson(results);
    else for (const r of results) process.stdout.write(`${r.ok ? style.green("ok  ") : style.red("FAIL")} ${r.name}: ${r.detail}\n`);
    if (results.some((r) => !r.ok)) process.exitCode = ExitCode.Unavailable;
  });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  const e = err as { code?: string; exitCode?: number };
  process.exitCode = typeof e.code === "string" && e.code.startsWith("commander.") ? (e.exitCode === 0 ? 0 : 2) : reportError(err);
}
