// What a long-lived daemon keeps: the disk a finished loop leaves after
// pruning, and ralphd's resident memory, open files and processes after many
// loops beside the same figures after the first (one run, same daemon).
import { join } from "node:path";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { ControlClient } from "../src/client/connection.js";
import { ensureLocalDaemon } from "../src/daemon/launcher.js";
import { scriptedModelConfig } from "../src/model/opencode-config.js";
import { startScriptedModel } from "../src/model/scripted-model.js";
import { waitFor } from "../src/util/wait.js";
import { LOCAL_NAME } from "../src/ziti/network.js";
import { makeProject, setDaemonConfig } from "../test/support/daemon-harness.js";
import { SoakDriver, footprint, soakBranches } from "../test/support/soak.js";

interface Point {
  rssMb: number;
  fds: number;
  processes: number;
  diskBytes: number;
}

export async function runRetentionBench(opts: { home: string; loops: number; log: (s: string) => void }) {
  const { home, loops, log } = opts;
  const model = await startScriptedModel({ script: { kind: "ralph-agent" } });
  const opencodeConfigFile = join(home, "bench-retention-opencode.json");
  writeFileSync(opencodeConfigFile, JSON.stringify(scriptedModelConfig(model.baseUrl)));
  setDaemonConfig(home, { opencodeConfigFile, retention: { worktreeDays: 0 }, notify: [] });
  const daemon = await ensureLocalDaemon();
  const client = await ControlClient.open(LOCAL_NAME);
  // Outside RALPH_HOME: the daemon refuses origins among its own files.
  const projectRoot = mkdtempSync(join(tmpdir(), "ralph-bench-project-"));
  const soak = new SoakDriver(home, model, makeProject(projectRoot, soakBranches(loops)), client);
  /** After a prune, once the ended loops' opencode processes are gone. */
  const measure = async (): Promise<Point> => {
    const since = new Date().toISOString();
    await soak.prune();
    const f = await waitFor(() => (footprint(daemon.pid).processes <= 2 ? footprint(daemon.pid) : undefined), { what: "ended loops' processes to exit", timeoutMs: 60_000 });
    const disk = await soak.disk(since);
    return { rssMb: f.rssBytes / 2 ** 20, fds: f.fds, processes: f.processes, diskBytes: disk.totalBytes };
  };
  try {
    log(`retention: 1 loop, then ${loops - 1} more, pruned after each batch`);
    await soak.run("complete");
    const first = await measure();
    for (let i = 1; i < loops; i++) await soak.run("complete");
    const last = await measure();
    const perLoop = (last.diskBytes - first.diskBytes) / (loops - 1);
    const rows = [
      ["", "rss MB", "fds", "processes", "disk MB"],
      ["after 1 loop", first.rssMb.toFixed(1), String(first.fds), String(first.processes), (first.diskBytes / 2 ** 20).toFixed(2)],
      [`after ${loops} loops`, last.rssMb.toFixed(1), String(last.fds), String(last.processes), (last.diskBytes / 2 ** 20).toFixed(2)],
      ["ratio", (last.rssMb / first.rssMb).toFixed(2) + "x", (last.fds / first.fds).toFixed(2) + "x", (last.processes / first.processes).toFixed(2) + "x", (last.diskBytes / first.diskBytes).toFixed(2) + "x"],
    ];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    const tables = [
      `A long-lived daemon after pruning (retention 0, ${loops} completed loops; target: memory and fds the same within noise)\n` +
        rows.map((r) => r.map((c, i) => c.padStart(widths[i]!)).join("  ")).join("\n") +
        `\ndisk a finished loop leaves after pruning (state DB rows and events; its git objects are in the origin): ${(perLoop / 1024).toFixed(1)} KB per loop (target under 1 MB)`,
    ];
    return { first, last, perLoopBytes: perLoop, tables };
  } finally {
    await client.close();
    if (daemon.startedHere) await daemon.stop();
    await model.close();
    rmSync(projectRoot, { recursive: true, force: true });
  }
}
