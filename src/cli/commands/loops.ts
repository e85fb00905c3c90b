import { Command } from "commander";
import { execa } from "execa";
import { openProxy, pickRemote, withControlClient } from "../../client/connection.js";
import { isTerminal, streamEvents, type DaemonEvent } from "../../client/events.js";
import { startRemoteLoop } from "../../client/start.js";
import type { LoopSummary } from "../../daemon/rpc.js";
import { LoopEventSchema } from "../../loop/events.js";
import { opencodeBinary } from "../../opencode/binary.js";
import { ExitCode } from "../exit-codes.js";
import { printJson, style } from "../output.js";
import { readFileSync } from "node:fs";
import { runningLocalRun, sayToLocalRun } from "../../loop/local-runs.js";
import { formatCost, formatUsage } from "../../loop/usage.js";
import type { DeliveryResult } from "../../daemon/notify.js";
import { CliError } from "../exit-codes.js";
import { describeEvent, positiveAmount, positiveInt } from "./run.js";
import type { PruneResult } from "../../daemon/retention.js";
import { mb } from "./daemon-info.js";

export const remoteOption = "--remote <name>";
export const remoteHelp = "the remote (default: the only one)";

const budgetOf = (l: LoopSummary): string => {
  const limits = [l.maxCostUsd !== null && formatCost(l.maxCostUsd), l.maxTokens !== null && `${l.maxTokens} tokens`].filter(Boolean);
  return limits.length ? ` of ${limits.join(" / ")}` : "";
};

const line = (l: LoopSummary) =>
  `${l.id}  ${l.status.padEnd(9)}  ${l.branch}  ${l.passed}/${l.total} stories  iteration ${l.iteration}/${l.maxIterations}  ${formatCost(l.usage.costUsd)}${l.storyId ? `  ${l.storyId}` : ""}${l.reason && l.status !== "completed" ? `  (${l.reason})` : ""}`;

const details = (l: LoopSummary) =>
  [
    line(l),
    `  origin ${l.origin}, task ${l.taskDir}${l.model ? `, model ${l.model}` : ""}`,
    `  used ${formatUsage(l.usage)}${budgetOf(l)} (input ${l.usage.tokens.input}, output ${l.usage.tokens.output}, reasoning ${l.usage.tokens.reasoning}, cache read ${l.usage.tokens.cacheRead}, cache write ${l.usage.tokens.cacheWrite})`,
    `  started ${l.createdAt}${l.endedAt ? `, ended ${l.endedAt}` : ""}${l.prunedAt ? `; worktree and log removed ${l.prunedAt}` : ""}`,
  ].join("\n");

export function describeDaemonEvent(e: DaemonEvent): string | undefined {
  if (e.type === "loop.status") return `loop ${e.loopId} ${style.bold(String(e.status))}${e.reason ? ` (${String(e.reason)})` : ""}`;
  if (e.type === "loop.pushed") return style.dim(`   pushed ${String(e.branch)} at ${String(e.commit).slice(0, 7)} to the origin`);
  if (e.type === "loop.push-failed") return style.yellow(`   push of ${String(e.branch)} failed (tried again later): ${String(e.error)}`);
  const parsed = LoopEventSchema.safeParse(e);
  return parsed.success ? describeEvent(parsed.data) : undefined;
}

interface StartFlags {
  remote?: string;
  origin?: string;
  maxIterations?: number;
  model?: string;
  maxCost?: number;
  maxTokens?: number;
  stallTimeout?: number;
  json?: boolean;
}

export function registerLoopCommands(program: Command): void {
  program
    .command("start")
    .description("Start a loop on a remote daemon: validates the PRD, pushes its branch, prints the loop id")
    .argument("<task-dir>", "directory holding prd.json, inside a git repository")
    .option(remoteOption, remoteHelp)
    .option("--origin <url>", "git URL the daemon fetches (default: the repo's origin remote)")
    .option("--max-iterations <n>", "iteration budget", positiveInt("--max-iterations"))
    .option("--model <provider/model>", "model for opencode")
    .option("--max-cost <usd>", "stop once the loop has cost this much (default: the daemon's)", positiveAmount("--max-cost"))
    .option("--max-tokens <n>", "stop once the loop has used this many tokens (default: the daemon's)", positiveInt("--max-tokens"))
    .option("--stall-timeout <seconds>", "abort an iteration after this long with no activity (default: the daemon's)", positiveInt("--stall-timeout"))
    .option("--json", "print the loop as JSON")
    .action(async (taskDir: string, o: StartFlags) => {
      const loop = await withControlClient(o.remote, (c) =>
        startRemoteLoop(c, { taskDir, origin: o.origin, maxIterations: o.maxIterations, model: o.model, maxCostUsd: o.maxCost, maxTokens: o.maxTokens, stallTimeoutSeconds: o.stallTimeout }),
      );
      if (o.json) printJson(loop);
      else process.stdout.write(`${loop.id}\n`);
    });

  program
    .command("ls")
    .description("List a remote's loops")
    .option(remoteOption, remoteHelp)
    .option("--json", "print as JSON")
    .action(async (o: { remote?: string; json?: boolean }) => {
      const { loops, remote } = await withControlClient(o.remote, async (c) => ({ ...(await c.call<{ loops: LoopSummary[] }>("GET", "/loops")), remote: c.remoteName }));
      if (o.json) return printJson(loops);
      if (loops.length === 0) process.stderr.write(`no loops on remote "${remote}" yet: 'ralph start TASK_DIR' starts one\n`);
      for (const l of loops) process.stdout.write(line(l) + "\n");
    });

  program
    .command("status")
    .description("One loop's status")
    .argument("<loop>", "loop id")
    .option(remoteOption, remoteHelp)
    .option("--json", "print as JSON")
    .action(async (id: string, o: { remote?: string; json?: boolean }) => {
      const { loop } = await withControlClient(o.remote, (c) => c.call<{ loop: LoopSummary }>("GET", `/loops/${encodeURIComponent(id)}`));
      if (o.json) printJson(loop);
      else process.stdout.write(details(loop) + "\n");
    });

  program
    .command("logs")
    .description("A loop's events; --follow keeps streaming (and resumes after a dropped connection) until the loop ends")
    .argument("<loop>", "loop id")
    .option(remoteOption, remoteHelp)
    .option("-f, --follow", "keep streaming")
    .option("--json", "one JSON event per line")
    .action(async (id: string, o: { remote?: string; follow?: boolean; json?: boolean }) => {
      await withControlClient(o.remote, async (c) => {
        const { loop } = await c.call<{ loop: LoopSummary }>("GET", `/loops/${encodeURIComponent(id)}`);
        const ended = !["starting", "running"].includes(loop.status);
        if (o.follow && loop.status === "starting") process.stderr.write(`loop ${id} is starting: waiting for its first events\n`);
        await streamEvents(c, {
          loopId: id,
          follow: Boolean(o.follow) && !ended,
          stopWhen: isTerminal,
          onGap: (message) => process.stderr.write(`${style.yellow("warning:")} ${message}\n`),
          onEvent: (e) => {
            if (o.json) return printJson(e);
            const text = describeDaemonEvent(e);
            if (text) process.stdout.write(text + "\n");
          },
        });
      });
    });

  program
    .command("stop")
    .description("Stop a loop and free its slot")
    .argument("<loop>", "loop id")
    .option(remoteOption, remoteHelp)
    .option("--json", "print the loop as JSON")
    .action(async (id: string, o: { remote?: string; json?: boolean }) => {
      const { loop } = await withControlClient(o.remote, (c) => c.call<{ loop: LoopSummary }>("POST", `/loops/${encodeURIComponent(id)}/stop`));
      if (o.json) printJson(loop);
      else process.stdout.write(line(loop) + "\n");
    });

  const pruned = (r: PruneResult) =>
    `${r.loops.length ? `removed ${r.loops.join(", ")}` : "no loop to remove"}${r.mirrors ? ` and ${r.mirrors} unused mirror(s)` : ""}: ${mb(r.freedBytes)} freed\n`;

  program
    .command("rm")
    .description("Forget a finished loop now: its worktree, log, record and events on the daemon (the pushed branch stays on the origin)")
    .argument("<loop>", "loop id")
    .option(remoteOption, remoteHelp)
    .option("--json", "print what was removed as JSON")
    .action(async (id: string, o: { remote?: string; json?: boolean }) => {
      const r = await withControlClient(o.remote, (c) => c.call<PruneResult>("DELETE", `/loops/${encodeURIComponent(id)}`));
      if (o.json) printJson(r);
      else process.stdout.write(pruned(r));
    });

  program
    .command("prune")
    .description("Apply the daemon's retention now: remove the worktrees and logs of loops that finished longer ago than it keeps them, and mirrors no loop uses")
    .option(remoteOption, remoteHelp)
    .option("--json", "print what was removed as JSON")
    .action(async (o: { remote?: string; json?: boolean }) => {
      const r = await withControlClient(o.remote, (c) => c.call<PruneResult>("POST", "/prune"));
      if (o.json) printJson(r);
      else process.stdout.write(pruned(r));
    });

  program
    .command("say")
    .description("Give a running loop guidance: its next iteration's prompt includes it, once (a local 'ralph run' or a remote loop)")
    .argument("<loop>", "loop id (a local run's id is printed when it starts)")
    .argument("[text]", "the guidance")
    .option("--file <file>", "read the guidance from a file ('-' for standard input)")
    .option(remoteOption, "the remote (default: a local run with this id, else the only remote)")
    .option("--json", "print the result as JSON")
    .action(async (id: string, textArg: string | undefined, o: { file?: string; remote?: string; json?: boolean }) => {
      if ((textArg === undefined) === (o.file === undefined)) throw new CliError("give the guidance as TEXT or with --file FILE, not both or neither", ExitCode.InvalidInput);
      const text = (o.file !== undefined ? readFileSync(o.file === "-" ? 0 : o.file, "utf8") : textArg!).trim();
      if (!text) throw new CliError("the guidance is empty", ExitCode.InvalidInput);
      const local = o.remote ? undefined : runningLocalRun(id);
      if (local) {
        sayToLocalRun(local, text);
        if (o.json) printJson({ loopId: id, local: true });
        else process.stderr.write(`queued for the next iteration of local run ${id}\n`);
        return;
      }
      const r = await withControlClient(o.remote, (c) => c.call<{ loopId: string; pending: number }>("POST", `/loops/${encodeURIComponent(id)}/say`, { text }));
      if (o.json) printJson(r);
      else process.stderr.write(`queued for the next iteration of loop ${id} (${r.pending} note(s) pending)\n`);
    });

  program
    .command("notify")
    .description("Notification targets of a daemon")
    .command("test")
    .description("Send a test message through the daemon to every notification target in its config, and say how each went")
    .option(remoteOption, remoteHelp)
    .option("--json", "print the results as JSON")
    .action(async (o: { remote?: string; json?: boolean }) => {
      const { results } = await withControlClient(o.remote, (c) => c.call<{ results: DeliveryResult[] }>("POST", "/notify/test"));
      if (o.json) printJson(results);
      else if (results.length === 0) process.stderr.write("the daemon has no notification targets: add some under \"notify\" in its config\n");
      for (const r of o.json ? [] : results) process.stdout.write(`${r.ok ? style.green("delivered") : style.red("failed")}  ${r.target}${r.error ? `: ${r.error}` : ""}\n`);
      if (results.some((r) => !r.ok)) process.exitCode = ExitCode.Unavailable;
    });

  program
    .command("attach")
    .description("Attach opencode's TUI to a running loop through the overlay")
    .argument("<loop>", "loop id")
    .option(remoteOption, remoteHelp)
    .option("--print-url", "print the local URL and password, and keep the proxy open until Ctrl-C")
    .action(async (id: string, o: { remote?: string; printUrl?: boolean }) => {
      const info = await withControlClient(o.remote, async (c) => {
        const { loop } = await c.call<{ loop: LoopSummary }>("GET", `/loops/${encodeURIComponent(id)}`);
        // The daemon answers once the loop's opencode is up: say why this may take a moment.
        if (loop.status === "starting" || (loop.status === "running" && loop.iteration === 0)) process.stderr.write(`loop ${id} is starting: waiting for its opencode to come up\n`);
        return c.call<{ service: string; terminator: string; username: string; password: string }>("GET", `/loops/${encodeURIComponent(id)}/attach`);
      });
      const { name, remote } = pickRemote(o.remote);
      const auth = "Basic " + Buffer.from(`${info.username}:${info.password}`).toString("base64");
      const proxy = await openProxy(name, remote, info.service, async (url) => (await fetch(`${url}/global/health`, { headers: { authorization: auth }, signal: AbortSignal.timeout(3000) })).ok, info.terminator);
      try {
        if (o.printUrl) {
          process.stdout.write(`${proxy.url}\n`);
          process.stderr.write(`password: OPENCODE_SERVER_PASSWORD=${info.password} (Ctrl-C closes the proxy)\n`);
          await new Promise<void>((r) => {
            process.once("SIGINT", () => r());
            process.once("SIGTERM", () => r());
          });
        } else {
          const r = await execa(opencodeBinary(), ["attach", proxy.url], {
            stdio: "inherit",
            reject: false,
            env: { OPENCODE_SERVER_USERNAME: info.username, OPENCODE_SERVER_PASSWORD: info.password },
          });
          process.exitCode = r.exitCode ?? ExitCode.Error;
        }
      } finally {
        await proxy.stop();
      }
    });
}
