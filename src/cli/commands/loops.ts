import type { Command } from "commander";
import { allowNetHelp, allowNetOption, boundedInt, collectHosts, limitOptions, loopId, loopRemoteHelp, positiveAmount, remoteHelp, remoteOption } from "../options.js";
import type { StartFlags } from "../actions/loops.js";

const actions = () => import("../actions/loops.js");

export function registerLoopCommands(program: Command): void {
  limitOptions(program.command("start"))
    .description("Start a loop on a remote daemon: validates the PRD, pushes its branch, prints the loop id")
    .argument("<task-dir>", "directory holding prd.json, inside a git repository")
    .option(remoteOption, "the remote (default: the only one); 'any' picks the reachable one with the most free slots")
    .option("--origin <url>", "git URL the daemon fetches (default: the repo's origin remote)")
    .option("--max-iterations <n>", "iteration budget", boundedInt("--max-iterations", "maxIterations"))
    .option("--model <provider/model>", "model for opencode")
    .option("--max-cost <usd>", "stop once the loop has cost this much (default: the daemon's)", positiveAmount("--max-cost"))
    .option("--max-tokens <n>", "stop once the loop has used this many tokens (default: the daemon's)", boundedInt("--max-tokens", "maxTokens"))
    .option("--stall-timeout <seconds>", "abort an iteration after this long with no activity (default: the daemon's)", boundedInt("--stall-timeout", "stallTimeoutSeconds"))
    .option(allowNetOption, allowNetHelp, collectHosts)
    .option("--json", "print the loop as JSON")
    .action(async (taskDir: string, o: StartFlags) => (await actions()).start(taskDir, o));

  program
    .command("ls")
    .description("List the loops of every remote, asked at once (an unreachable remote is reported, not fatal), or of one")
    .option(remoteOption, "only this remote")
    .option("--json", "print as JSON: the loops, each with its remote")
    .action(async (o: { remote?: string; json?: boolean }) => (await actions()).ls(o));

  program
    .command("status")
    .description("One loop's status")
    .argument("<loop>", "loop id", loopId)
    .option(remoteOption, loopRemoteHelp)
    .option("--json", "print as JSON")
    .action(async (id: string, o: { remote?: string; json?: boolean }) => (await actions()).status(id, o));

  program
    .command("logs")
    .description("A loop's events; --follow keeps streaming (and resumes after a dropped connection) until the loop ends")
    .argument("<loop>", "loop id", loopId)
    .option(remoteOption, loopRemoteHelp)
    .option("-f, --follow", "keep streaming")
    .option("--json", "one JSON event per line")
    .action(async (id: string, o: { remote?: string; follow?: boolean; json?: boolean }) => (await actions()).logs(id, o));

  program
    .command("stop")
    .description("Stop a loop and free its slot")
    .argument("<loop>", "loop id", loopId)
    .option(remoteOption, loopRemoteHelp)
    .option("--json", "print the loop as JSON")
    .action(async (id: string, o: { remote?: string; json?: boolean }) => (await actions()).stop(id, o));

  program
    .command("rm")
    .description("Forget a finished loop now: its worktree, log, record and events on the daemon (the pushed branch stays on the origin)")
    .argument("<loop>", "loop id", loopId)
    .option(remoteOption, loopRemoteHelp)
    .option("--json", "print what was removed as JSON")
    .action(async (id: string, o: { remote?: string; json?: boolean }) => (await actions()).rm(id, o));

  program
    .command("prune")
    .description("Apply the daemon's retention now: remove the worktrees and logs of loops that finished longer ago than it keeps them, and mirrors no loop uses")
    .option(remoteOption, remoteHelp)
    .option("--json", "print what was removed as JSON")
    .action(async (o: { remote?: string; json?: boolean }) => (await actions()).prune(o));

  program
    .command("say")
    .description("Give a running loop guidance: its next iteration's prompt includes it, once (a local 'ralph run' or a remote loop)")
    .argument("<loop>", "loop id (a local run's id is printed when it starts)", loopId)
    .argument("[text]", "the guidance")
    .option("--file <file>", "read the guidance from a file ('-' for standard input)")
    .option(remoteOption, "the remote (default: a local run with this id, else the remote that has a loop with this id)")
    .option("--json", "print the result as JSON")
    .action(async (id: string, text: string | undefined, o: { file?: string; remote?: string; json?: boolean }) => (await actions()).say(id, text, o));

  program
    .command("notify")
    .description("Notification targets of a daemon")
    .command("test")
    .description("Send a test message through the daemon to every notification target in its config, and say how each went")
    .option(remoteOption, remoteHelp)
    .option("--json", "print the results as JSON")
    .action(async (o: { remote?: string; json?: boolean }) => (await actions()).notifyTest(o));

  program
    .command("attach")
    .description("Attach opencode's TUI to a running loop through the overlay (waits for a loop that is starting)")
    .argument("<loop>", "loop id", loopId)
    .option(remoteOption, loopRemoteHelp)
    .option("--print-url", "print the local URL and password, and keep the proxy open until Ctrl-C")
    .action(async (id: string, o: { remote?: string; printUrl?: boolean }) => (await actions()).attach(id, o));
}
