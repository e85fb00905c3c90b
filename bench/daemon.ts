// The remote flow's own costs, measured through the real CLI, ralphd and the
// overlay: time from `ralph start` to the loop's first iteration (beside a
// local `ralph run` on the same machine), time from `ralph attach` (run right
// after `ralph start`, while the loop starts) to a ready URL, ralphd's memory
// with 1 and with 4 active loops, and the delay from a loop's end to its
// notification reaching a local webhook.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { ControlClient } from "../src/client/connection.js";
import { streamEvents } from "../src/client/events.js";
import { ensureLocalDaemon } from "../src/daemon/launcher.js";
import { scriptedModelConfig } from "../src/model/opencode-config.js";
import { startScriptedModel } from "../src/model/scripted-model.js";
import { waitFor } from "../src/util/wait.js";
import { LOCAL_NAME } from "../src/ziti/network.js";
import { cli, makeProject, setDaemonConfig } from "../test/support/daemon-harness.js";
import { footprint } from "../test/support/soak.js";
import { startReceiver } from "../test/support/http-receiver.js";
import { git, makeRepo } from "../test/support/loop-fixtures.js";
import { summarize, table } from "./stats.js";

const rssMb = (pid: number): number => footprint(pid).rssBytes / 2 ** 20;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Spawns the ralph CLI and resolves with the time until `ready` says so of a stdout line. */
function timeCli(home: string, args: string[], cwd: string | undefined, ready: (line: string) => boolean) {
  const t0 = performance.now();
  const child = spawn(process.execPath, [cli, ...args], { cwd, env: { ...process.env, RALPH_HOME: home }, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
  const line = new Promise<{ ms: number; line: string }>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (l) => ready(l) && resolve({ ms: performance.now() - t0, line: l }));
    void exited.then((c) => reject(new Error(`ralph ${args[0]} exited (${c}) before it was ready: ${stderr.trim()}`)));
  });
  return { t0, child, exited, line };
}

export async function runDaemonBench(opts: { home: string; samples: number; log: (s: string) => void }) {
  const { home, samples, log } = opts;
  const model = await startScriptedModel({ script: { kind: "hang" } });
  const opencodeConfigFile = join(home, "bench-opencode.json");
  writeFileSync(opencodeConfigFile, JSON.stringify(scriptedModelConfig(model.baseUrl)));
  const receiver = await startReceiver();
  setDaemonConfig(home, { maxConcurrentLoops: 4, opencodeConfigFile, notify: [{ kind: "webhook", url: `${receiver.url}/hook`, events: ["completed"] }] });
  const daemon = await ensureLocalDaemon();
  const branches = Array.from({ length: 3 * samples + 4 }, (_, i) => `bench/b${i}`);
  // Outside RALPH_HOME: the daemon refuses origins among its own files.
  const projectRoot = mkdtempSync(join(tmpdir(), "ralph-bench-project-"));
  const project = makeProject(projectRoot, branches);
  const client = await ControlClient.open(LOCAL_NAME);
  const firstIteration = new Map<string, number>();
  const streamStop = new AbortController();
  const streaming = streamEvents(client, {
    follow: true,
    signal: streamStop.signal,
    onEvent: (e) => {
      if (e.type === "iteration.started" && !firstIteration.has(e.loopId)) firstIteration.set(e.loopId, performance.now());
    },
  });
  const started: string[] = [];
  const startRemote = async (branch: string) => {
    git(project.repo, "switch", "-q", branch);
    const run = timeCli(home, ["start", "task"], project.repo, (l) => /^[0-9a-f]{8}$/.test(l));
    const { line: id } = await run.line;
    started.push(id);
    const at = await waitFor(() => firstIteration.get(id), { what: `loop ${id}'s first iteration`, timeoutMs: 120_000, intervalMs: 10 });
    return { id, ms: at - run.t0 };
  };
  const stopAll = async () => {
    for (const id of started.splice(0)) await client.api.loops[":id"].stop.$post({ param: { id } }).catch(() => undefined);
  };
  try {
    const local: number[] = [];
    const remote: number[] = [];
    const attach: number[] = [];
    for (let i = 0; i < samples; i++) {
      log(`sample ${i + 1}/${samples}: local ralph run, remote ralph start, ralph attach`);
      const f = makeRepo(model.baseUrl);
      const run = timeCli(home, ["run", f.taskDir, "--json"], undefined, (l) => l.includes('"iteration.started"'));
      local.push((await run.line).ms);
      run.child.kill("SIGINT");
      await run.exited;
      f.cleanup();

      remote.push((await startRemote(branches[i]!)).ms);
      await stopAll();

      // Attach as a user does: right after `ralph start` prints the id, while the loop is starting.
      git(project.repo, "switch", "-q", branches[3 * samples + 4 - 1 - i]!);
      const { line: id } = await timeCli(home, ["start", "task"], project.repo, (l) => /^[0-9a-f]{8}$/.test(l)).line;
      started.push(id);
      const att = timeCli(home, ["attach", id, "--print-url"], undefined, (l) => l.startsWith("http://127.0.0.1:"));
      attach.push((await att.line).ms);
      att.child.kill("SIGINT");
      await att.exited;
      await stopAll();
    }

    log("ralphd memory with 1 and with 4 active loops");
    const readRss = async () => {
      const xs: number[] = [];
      for (let i = 0; i < 5; i++) {
        xs.push(rssMb(daemon.pid));
        await new Promise((r) => setTimeout(r, 200));
      }
      return median(xs);
    };
    await startRemote(branches[samples]!);
    const rss1 = await readRss();
    for (let i = 1; i < 4; i++) await startRemote(branches[samples + i]!);
    const rss4 = await readRss();
    await stopAll();

    log("loop end to notification received");
    model.setScript({ kind: "ralph-agent" });
    const notified: number[] = [];
    for (let i = 0; i < samples; i++) {
      const { id } = await startRemote(branches[samples + 4 + i]!);
      const note = await waitFor(() => receiver.requests.find((r) => r.body.includes(`"loopId":"${id}"`)), { what: `loop ${id}'s notification`, timeoutMs: 120_000, intervalMs: 5 });
      notified.push(note.at - Date.parse((JSON.parse(note.body) as { time: string }).time));
    }
    model.setScript({ kind: "hang" });
    const notifiedS = summarize(notified);

    const startLocal = summarize(local);
    const startRemoteS = summarize(remote);
    const attachS = summarize(attach);
    return {
      start_to_first_iteration_ms: { local_run: startLocal, remote_start: startRemoteS },
      attach_ready_ms: attachS,
      ralphd_rss_mb: { loops_1: Math.round(rss1), loops_4: Math.round(rss4) },
      notification_delay_ms: notifiedS,
      tables: [
        "Start to first iteration running (ms): local `ralph run` vs remote `ralph start` through the overlay\n" +
          table([["local run", startLocal], ["remote start", startRemoteS]], startLocal),
        "`ralph attach --print-url` run right after `ralph start`, to a ready URL through the overlay (ms)\n" + table([["attach", attachS]], attachS),
        `ralphd resident memory: ${rss1.toFixed(0)} MB with 1 active loop, ${rss4.toFixed(0)} MB with 4 (opencode servers are separate processes)`,
        "Loop end (its status event) to the webhook receiving the notification (ms)\n" + table([["notification", notifiedS]], notifiedS),
      ],
    };
  } finally {
    await stopAll();
    streamStop.abort();
    await streaming.catch(() => undefined);
    await client.close();
    if (daemon.startedHere) await daemon.stop();
    await model.close();
    await receiver.close();
    rmSync(projectRoot, { recursive: true, force: true });
  }
}
