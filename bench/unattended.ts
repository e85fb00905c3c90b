// What unattended-loop features cost: a loop iteration's wall time with and
// without token and cost accounting (side by side, alternating runs), and the
// delay from a loop's end to its notification reaching a webhook.
import { runLoop } from "../src/loop/engine.js";
import type { ScriptedModel } from "../src/model/scripted-model.js";
import { makeRepo, TEST_PRICE } from "../test/support/loop-fixtures.js";
import { summarize, table } from "./stats.js";

/** Iterations 2 and 3 of a 3-story loop (the first also starts opencode). */
async function iterationTimes(model: ScriptedModel, home: string, accounting: boolean): Promise<number[]> {
  const f = makeRepo(model.baseUrl, undefined, { price: TEST_PRICE });
  process.env.RALPH_HOME = home;
  const times: number[] = [];
  try {
    const r = await runLoop({
      taskDir: f.taskDir,
      maxIterations: 3,
      iterationTimeoutMs: 120_000,
      accounting,
      onEvent: (e) => {
        if (e.type === "iteration.ended" && e.iteration > 1) times.push(e.durationMs);
      },
    });
    if (r.status !== "completed") throw new Error(`bench loop ended ${r.status}: ${r.reason}`);
  } finally {
    f.cleanup();
  }
  return times;
}

export async function runAccountingBench(opts: { model: ScriptedModel; home: string; samples: number; log: (s: string) => void }) {
  opts.model.setScript({ kind: "ralph-agent" });
  const on: number[] = [];
  const off: number[] = [];
  for (let i = 0; i < opts.samples; i++) {
    opts.log(`accounting sample ${i + 1}/${opts.samples}: a loop without accounting, then one with`);
    off.push(...(await iterationTimes(opts.model, opts.home, false)));
    on.push(...(await iterationTimes(opts.model, opts.home, true)));
  }
  const offS = summarize(off);
  const onS = summarize(on);
  return {
    iteration_ms: { without_accounting: offS, with_accounting: onS },
    tables: ["Loop iteration wall time (ms), scripted model, real opencode: accounting off vs on\n" + table([["without accounting", offS], ["with accounting", onS]], offS)],
  };
}
