// What a long-lived daemon keeps: the disk a finished loop leaves after
// pruning, and ralphd's resident memory, JavaScript heap (its size after a
// full collection, from a heap snapshot), open files and processes after many
// loops beside the same figures after the first (one run, same daemon).
import { join } from "node:path";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
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
  /** Heap snapshot size: what survives a full collection; null when the daemon was not started here. */
  heapMb: number | null;
  fds: number;
  processes: number;
  diskBytes: number;
}

const heap = (p: Point) => (p.heapMb === null ? "n/a" : p.heapMb.toFixed(1));

/** Has the daemon write a heap snapshot (into its working directory, ours) and returns its size; the file is removed. */
async function heapSnapshotBytes(pid: number): Promise<number> {
  const ours = (f: string) => f.endsWith(".heapsnapshot") && f.includes(`.${pid}.`);
  const before = new Set(readdirSync(process.cwd()).filter(ours));
  process.kill(pid, "SIGUSR2");
  const file = join(process.cwd(), await waitFor(() => readdirSync(process.cwd()).find((f) => ours(f) && !before.has(f)), { what: "ralphd's heap snapshot", timeoutMs: 60_000 }));
  // Written while we wait: done once its size stops changing.
  let last = -1;
  const size = await waitFor(() => {
    const now = statSync(file).size;
    const done = now > 0 && now === last;
    last = now;
    return done ? now : undefined;
  }, { what: "ralphd's heap snapshot to be written", timeoutMs: 120_000, intervalMs: 1000 });
  rmSync(file);
  return size;
}

export async function runRetentionBench(opts: { home: string; loops: number; log: (s: string) => void }) {
  const { home, loops, log } = opts;
  const model = await startScriptedModel({ script: { kind: "ralph-agent" } });
  const opencodeConfigFile = join(home, "bench-retention-opencode.json");
  writeFileSync(opencodeConfigFile, JSON.stringify(scriptedModelConfig(model.baseUrl)));
  setDaemonConfig(home, { opencodeConfigFile, retention: { worktreeDays: 0 }, notify: [] });
  // A heap snapshot on SIGUSR2 (taken after a full collection) tells retained memory from heap V8 keeps.
  const nodeOptions = process.env.NODE_OPTIONS;
  process.env.NODE_OPTIONS = [nodeOptions, "--heapsnapshot-signal=SIGUSR2"].filter(Boolean).join(" ");
  const daemon = await ensureLocalDaemon().finally(() => {
    if (nodeOptions === undefined) delete process.env.NODE_OPTIONS;
    else process.env.NODE_OPTIONS = nodeOptions;
  });
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
    const heapMb = daemon.startedHere ? (await heapSnapshotBytes(daemon.pid)) / 2 ** 20 : null;
    return { rssMb: f.rssBytes / 2 ** 20, heapMb, fds: f.fds, processes: f.processes, diskBytes: disk.totalBytes };
  };
  try {
    log(`retention: 1 loop, then ${loops - 1} more, pruned after each batch`);
    await soak.run("complete");
    const first = await measure();
    for (let i = 1; i < loops; i++) await soak.run("complete");
    const last = await measure();
    const perLoop = (last.diskBytes - first.diskBytes) / (loops - 1);
    const rows = [
      ["", "rss MB", "heap MB", "fds", "processes", "disk MB"],
      ["after 1 loop", first.rssMb.toFixed(1), heap(first), String(first.fds), String(first.processes), (first.diskBytes / 2 ** 20).toFixed(2)],
      [`after ${loops} loops`, last.rssMb.toFixed(1), heap(last), String(last.fds), String(last.processes), (last.diskBytes / 2 ** 20).toFixed(2)],
      [
        "ratio",
        (last.rssMb / first.rssMb).toFixed(2) + "x",
        first.heapMb && last.heapMb ? (last.heapMb / first.heapMb).toFixed(2) + "x" : "n/a",
        (last.fds / first.fds).toFixed(2) + "x",
        (last.processes / first.processes).toFixed(2) + "x",
        (last.diskBytes / first.diskBytes).toFixed(2) + "x",
      ],
    ];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    const tables = [
      `A long-lived daemon after pruning (retention 0, ${loops} completed loops; target: memory and fds the same within noise)\n` +
        rows.map((r) => r.map((c, i) => c.padStart(widths[i]!)).join("  ")).join("\n") +
        `\nrss after ${loops} loops includes what writing the first heap snapshot added (tens of MB): the heap column, measured after a full collection, is the one to compare` +
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
