import { execa } from "execa";
import { ControlClient } from "../client/connection.js";
import { isTerminal, streamEvents } from "../client/events.js";
import type { StreamEvent } from "../contract/events.js";
import { expectOk } from "../client/api.js";
import { startRemoteLoop } from "../client/start.js";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureLocalDaemon } from "../daemon/launcher.js";
import type { LoopSummary } from "../contract/schemas.js";
import { DEMO_PRICE, scriptedModelConfig } from "../model/opencode-config.js";
import { startScriptedModel } from "../model/scripted-model.js";
import { LOCAL_NAME, zitiDown, zitiStatus, zitiUp } from "../ziti/network.js";
import { createExampleRepo, EXAMPLE_PRD } from "./example-repo.js";

export interface DemoOptions {
  /** The user's model; without it, the scripted offline demo model. */
  model?: string;
  keepNetwork?: boolean;
  keepDaemon?: boolean;
  step: (line: string) => void;
  warn: (line: string) => void;
  onEvent: (e: StreamEvent) => void;
  signal: AbortSignal;
}

export interface DemoResult {
  loop: LoopSummary;
  origin: string;
  /** `git log --oneline main..BRANCH` on the origin after the loop. */
  pushed: string;
}

/**
 * The product's main job on one machine: the embedded OpenZiti network, a
 * local ralphd, and an example loop started, followed and finished through
 * the overlay exactly as from another machine.
 */
export async function runRemoteDemo(o: DemoOptions): Promise<DemoResult> {
  const cleanup: (() => Promise<unknown>)[] = [];
  const networkWasRunning = (await zitiStatus()).running;
  try {
    o.step("OpenZiti network");
    await zitiUp({ onProgress: o.step });
    if (!networkWasRunning && !o.keepNetwork) cleanup.unshift(() => zitiDown().then(() => o.step("network stopped ('ralph ziti up' keeps one running)")));

    let opencodeConfig: Record<string, unknown> | undefined;
    let allowNet: string[] | undefined;
    if (!o.model) {
      const model = await startScriptedModel({ script: { kind: "ralph-agent" } });
      cleanup.unshift(() => model.close());
      opencodeConfig = scriptedModelConfig(model.baseUrl, DEMO_PRICE);
      // The example repository names the demo model; a daemon never lets a loop reach what a repository names on its own.
      allowNet = [`127.0.0.1:${model.port}`];
      o.warn(
        `model: the scripted offline DEMO model (no AI: it implements each story with a fixed script), priced at a made-up $${DEMO_PRICE.input}/$${DEMO_PRICE.output} per million input/output tokens so that costs show. Pass --model provider/model to use yours.`,
      );
    } else o.step(`model: ${o.model}`);

    o.step("ralphd, the daemon (its control API is reachable only through the overlay)");
    const daemon = await ensureLocalDaemon();
    if (daemon.startedHere && !o.keepDaemon) cleanup.unshift(() => daemon.stop());
    o.step(daemon.startedHere ? `ralphd started (pid ${daemon.pid})` : `using the ralphd already running (pid ${daemon.pid})`);

    // Outside RALPH_HOME: a daemon refuses origins among its own files. Kept afterwards, to look at.
    const example = await createExampleRepo(mkdtempSync(join(tmpdir(), "ralph-demo-")), opencodeConfig);
    o.step(`example project ${example.repo}, origin file://${example.origin}`);

    const client = await ControlClient.open(LOCAL_NAME);
    cleanup.unshift(() => client.close());
    o.step(`remote "${LOCAL_NAME}": the control API through the overlay, ${client.route}`);
    const started = await startRemoteLoop(client, { taskDir: example.taskDir, maxIterations: 6, model: o.model, allowNet });
    o.step(`loop ${started.id} started on ${started.branch}${allowNet ? `, in a sandbox that may reach the demo model (--allow-net ${allowNet.join(" ")})` : ""}; watch it from another shell with 'ralph logs ${started.id} -f' or 'ralph attach ${started.id}'`);

    const onStop = () => void client.api.loops[":id"].stop.$post({ param: { id: started.id } }).catch(() => undefined);
    o.signal.addEventListener("abort", onStop, { once: true });
    try {
      await streamEvents(client, { loopId: started.id, follow: true, stopWhen: isTerminal, onEvent: o.onEvent });
    } finally {
      o.signal.removeEventListener("abort", onStop);
    }
    const { loop } = await expectOk(client.remoteName, client.api.loops[":id"].$get({ param: { id: started.id } }));
    const log = await execa("git", ["--git-dir", example.origin, "log", "--oneline", `main..${EXAMPLE_PRD.branchName}`], { reject: false });
    return { loop, origin: `file://${example.origin}`, pushed: log.stdout.trim() };
  } finally {
    for (const c of cleanup) await c().catch((err: unknown) => o.warn(`cleanup: ${(err as Error).message}`));
  }
}
