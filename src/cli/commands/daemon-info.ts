import type { Command } from "commander";
import { remoteHelp, remoteOption } from "../options.js";

const actions = () => import("../actions/daemon-info.js");

export function registerDaemonInfoCommands(program: Command): void {
  program
    .command("health")
    .description("A remote daemon's health: uptime, loops, load, memory, disk, versions")
    .option(remoteOption, remoteHelp)
    .option("--json", "print as JSON")
    .action(async (o: { remote?: string; json?: boolean }) => (await actions()).health(o));

  program
    .command("models")
    .description("Models and agents loops can use on a remote daemon (from its opencode config and keys)")
    .option(remoteOption, remoteHelp)
    .option("--json", "print as JSON")
    .action(async (o: { remote?: string; json?: boolean }) => (await actions()).models(o));

  const agent = program
    .command("agent")
    .description("The client agent: it keeps a logged-in overlay connection to each recently used remote, so that commands answer at once; it starts on first use and exits when idle");
  agent
    .command("status")
    .description("Whether the agent runs, and the dialers it keeps")
    .option("--json", "print as JSON")
    .action(async (o: { json?: boolean }) => (await actions()).agentStatus(o));
  agent
    .command("run")
    .description("Run the agent in the foreground (commands start it in the background by themselves)")
    .action(async () => (await actions()).agentRun());
  agent
    .command("stop")
    .description("Stop the agent and its dialers now (the next command starts it again)")
    .action(async () => (await actions()).agentStop());
}
