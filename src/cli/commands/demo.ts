import type { Command } from "commander";
import { join } from "node:path";
import { homeDir } from "../../config/paths.js";
import { createExampleRepo, pushBranch, EXAMPLE_PRD } from "../../demo/example-repo.js";
import { runLoop } from "../../loop/engine.js";
import { startScriptedModel } from "../../model/scripted-model.js";
import { scriptedModelConfig } from "../../model/opencode-config.js";
import { startOpencodeServer, type OpencodeServer } from "../../opencode/server.js";
import { localManagementClient, zitiDown, zitiStatus, zitiUp } from "../../ziti/network.js";
import { loopServiceName } from "../../ziti/roles.js";
import { startHostTunnel, startProxyTunnel } from "../../ziti/tunnel.js";
import { execa } from "execa";
import { describeEvent, exitCodeForStatus, summary } from "./run.js";
import { style } from "../output.js";

const step = (s: string) => process.stderr.write(`${style.bold("==>")} ${s}\n`);

export function registerDemoCommand(program: Command): void {
  program
    .command("demo")
    .description("The whole path on this machine: an OpenZiti network on 127.0.0.1, an opencode server reachable only through it, and an example Ralph loop driven across the overlay")
    .option("--model <provider/model>", "your model (default: the scripted offline demo model)")
    .option("--keep-network", "leave the OpenZiti network running afterwards")
    .action(async (o: { model?: string; keepNetwork?: boolean }) => {
      const wasRunning = (await zitiStatus()).running;
      step("OpenZiti network");
      const net = await zitiUp({ onProgress: step });
      const runDir = homeDir("demo", new Date().toISOString().replace(/[:.]/g, "-"));
      const cleanup: (() => Promise<unknown>)[] = [];
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
      try {
        const example = await createExampleRepo(runDir);
        step(`example project ${example.repo} (origin file://${example.origin})`);
        let config: Record<string, unknown> | undefined;
        if (!o.model) {
          const model = await startScriptedModel({ script: { kind: "ralph-agent" } });
          cleanup.push(() => model.close());
          config = scriptedModelConfig(model.baseUrl);
          step(style.yellow("model: the scripted offline DEMO model (no AI; it implements each story with a fixed script). Pass --model provider/model to use yours."));
        } else step(`model: ${o.model}`);

        // The daemon side: opencode on 127.0.0.1 behind its own Ziti service, hosted with the daemon identity.
        const mgmt = await localManagementClient();
        cleanup.push(() => mgmt.close());
        const service = loopServiceName("local", `demo-${Date.now().toString(36)}`);
        const host = await startHostTunnel({ identityFile: net.daemonIdentityFile, logFile: join(runDir, "host-tunnel.log") });
        cleanup.unshift(() => host.stop());
        cleanup.unshift(() => mgmt.deregisterService(service));
        let proxyUrl: string | undefined;
        const startServer = async (): Promise<OpencodeServer> => {
          const server = await startOpencodeServer({ cwd: example.repo, stateDir: join(runDir, "opencode"), logFile: join(runDir, "opencode.log"), config });
          cleanup.unshift(() => server.stop());
          await mgmt.deregisterService(service);
          await mgmt.registerService(service, { port: server.port });
          step(`opencode (pid ${server.pid}) registered as Ziti service ${service}`);
          // The client side: everything below talks to opencode only through the overlay.
          if (!proxyUrl) {
            const proxy = await startProxyTunnel({ identityFile: net.clientIdentityFile, service, logFile: join(runDir, "proxy-tunnel.log") });
            cleanup.unshift(() => proxy.stop());
            proxyUrl = proxy.url;
            step(`client proxy ${proxy.url} -> overlay -> ${service}`);
          }
          return { ...server, url: proxyUrl };
        };
        const result = await runLoop({
          taskDir: example.taskDir,
          maxIterations: 6,
          model: o.model,
          iterationTimeoutMs: 15 * 60_000,
          signal: stop.signal,
          startServer,
          onEvent: (e) => {
            const line = describeEvent(e);
            if (line) process.stdout.write(line + "\n");
          },
          afterIteration: async ({ committed }) => {
            if (!committed) return;
            const err = await pushBranch(example.repo, EXAMPLE_PRD.branchName);
            if (err) step(style.yellow(`push failed (will retry after the next iteration): ${err}`));
          },
        });
        const pushErr = await pushBranch(example.repo, EXAMPLE_PRD.branchName);
        const log = await execa("git", ["--git-dir", example.origin, "log", "--oneline", `main..${EXAMPLE_PRD.branchName}`], { reject: false });
        process.stdout.write(`\n${summary(result)}\n`);
        process.stdout.write(pushErr ? `final push failed: ${pushErr}\n` : `origin ${example.origin} branch ${EXAMPLE_PRD.branchName}:\n${log.stdout}\n`);
        process.exitCode = exitCodeForStatus(result.status);
      } finally {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
        for (const c of cleanup) await c().catch(() => undefined);
        if (!wasRunning && !o.keepNetwork) {
          await zitiDown();
          step("network stopped (ralph ziti up keeps one running)");
        }
      }
    });
}
