#!/usr/bin/env node
import { Command } from "commander";
import { endQuietlyOnClosedPipe, installSafeOutput, reportError } from "./output.js";
import { registerRunCommand } from "./commands/run.js";
import { registerZitiCommands } from "./commands/ziti.js";
import { registerRemoteCommands } from "./commands/remote.js";
import { registerLoopCommands } from "./commands/loops.js";
import { registerDemoCommand } from "./commands/demo.js";
import { registerDaemonInfoCommands } from "./commands/daemon-info.js";
import { VERSION } from "../version.js";
import { exitOnSignalUnlessHandled } from "./signals.js";

const program = new Command("ralph")
  .description("Run Ralph loops locally, or on remote machines over an OpenZiti overlay.")
  .version(VERSION)
  .showHelpAfterError()
  .configureOutput({ outputError: (str, write) => write(str) });
program.exitOverride();
exitOnSignalUnlessHandled();
endQuietlyOnClosedPipe();
installSafeOutput();

registerRunCommand(program);
registerZitiCommands(program);
registerRemoteCommands(program);
registerLoopCommands(program);
registerDaemonInfoCommands(program);
registerDemoCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  const e = err as { code?: string; exitCode?: number };
  if (typeof e.code === "string" && e.code.startsWith("commander.")) {
    // Help and version exit 0; usage errors are invalid input.
    process.exitCode = e.exitCode === 0 ? 0 : 2;
  } else {
    process.exitCode = reportError(err);
  }
}
