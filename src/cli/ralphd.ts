#!/usr/bin/env node
import { Command } from "commander";
import { loadDaemonConfig } from "../daemon/config.js";
import { checkDaemon } from "../daemon/check.js";
import { runDaemon, runningDaemonPid, stopLoopsRequestFile } from "../daemon/main.js";
import { ralphHome } from "../config/paths.js";
import { pidAlive } from "../process/supervisor.js";
import { waitFor } from "../util/wait.js";
import { joinNetwork } from "../daemon/join.js";
import { readFileSync, writeFileSync } from "node:fs";
import { ExitCode } from "./exit-codes.js";
import { InvalidInputError, NotFoundError } from "../util/errors.js";
import { endQuietlyOnClosedPipe, installSafeOutput, printJson, reportError, style } from "./output.js";
import { VERSION } from "../version.js";
import { exitOnSignalUnlessHandled } from "./signals.js";

const config = (path?: string) => {
  try {
    return loadDaemonConfig(path);
  } catch (err) {
    throw new InvalidInputError((err as Error).message);
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
installSafeOutput();

program
  .command("join")
  .description("Join a network as a daemon with a one-time token from 'ralph ziti identity create NAME --role daemon': enrols here (the key pair is made on this machine), then writes a complete daemon config, so that 'ralphd check' and 'ralphd' need no arguments")
  .requiredOption("--token <file>", "the token file, or - for standard input")
  .option("--name <name>", "the daemon's name (default: the one its identity may host services for)")
  .option("--workspace <dir>", "where loops' checkouts live (default: RALPH_HOME/daemon/workspace)")
  .option("--config <file>", "where to write the daemon config (default: RALPH_HOME/daemon/config.json); the identity goes beside it")
  .option("--json", "print the result as JSON")
  .action(async (o: { token: string; name?: string; workspace?: string; config?: string; json?: boolean }) => {
    const source = o.token === "-" ? "standard input" : o.token;
    let token: string;
    try {
      token = readFileSync(o.token === "-" ? 0 : o.token, "utf8");
    } catch (err) {
      throw new InvalidInputError(`cannot read the token from ${source}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const r = await joinNetwork({ token, source, name: o.name, workspaceDir: o.workspace, configFile: o.config ?? program.opts<{ config?: string }>().config });
    if (o.json) return printJson(r);
    process.stdout.write(`joined ${r.controller} as daemon "${r.name}": config ${r.configFile}, identity ${r.identityFile} (its private key was made here)
`);
    process.stderr.write(`next: 'ralphd check'${o.config ? ` --config ${r.configFile}` : ""}, then 'ralphd'; clients add it with 'ralph remote add ${r.name} --token FILE'\n`);
  });

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

program
  .command("stop")
  .description(
    "Stop the ralphd of this RALPH_HOME, as systemctl stop does: its loops run on for the next ralphd to re-adopt (and stop themselves after orphanStopSeconds without one); --loops ends them instead",
  )
  .option("--loops", 'end every running loop as ralphd stops, recorded and notified as "daemon shutdown"')
  .option("--timeout <seconds>", "how long to wait for ralphd to exit", (v: string) => Number(v), 90)
  .option("--json", "print the result as JSON")
  .action(async (o: { loops?: boolean; timeout: number; json?: boolean }) => {
    const pid = runningDaemonPid();
    if (!pid) throw new NotFoundError(`no ralphd is running for ${ralphHome()}`);
    if (o.loops) writeFileSync(stopLoopsRequestFile(), "", { mode: 0o600 });
    process.kill(pid, "SIGTERM");
    if (!o.json) process.stderr.write(`stopping ralphd (pid ${pid})${o.loops ? " and ending its loops" : ""}...\n`);
    await waitFor(() => !pidAlive(pid), { what: `ralphd (pid ${pid}) to exit`, timeoutMs: o.timeout * 1000, intervalMs: 100 });
    const loops = o.loops ? "ended" : "left running";
    if (o.json) printJson({ pid, stopped: true, loops });
    else process.stdout.write(`ralphd (pid ${pid}) stopped; its loops were ${loops === "ended" ? 'ended ("daemon shutdown")' : "left running for the next ralphd to re-adopt"}\n`);
  });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  const e = err as { code?: string; exitCode?: number };
  process.exitCode = typeof e.code === "string" && e.code.startsWith("commander.") ? (e.exitCode === 0 ? 0 : 2) : reportError(err);
}
