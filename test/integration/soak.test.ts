// A long-lived daemon: 30 short loops in sequence, some completing, some
// failing, some stopped, and one that ends while the controller is down. After
// them (and 'ralph prune') the daemon is back to where it was after its first
// loop: processes, open files, Ziti registrations, running rows and disk.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { startScriptedModel, type ScriptedModel } from "../../src/model/scripted-model.js";
import { ControlClient } from "../../src/client/connection.js";
import { expectOk } from "../../src/client/api.js";
import { waitFor } from "../../src/util/wait.js";
import { findProcesses } from "../../src/process/proc-scan.js";
import { pidAlive } from "../../src/process/supervisor.js";
import type { ManagementClient } from "../../src/ziti/mgmt.js";
import { localManagementClient, zitiDown, zitiUp } from "../../src/ziti/network.js";
import { controlServiceName, loopsServiceName } from "../../src/ziti/roles.js";
import { makeProject, offerScriptedModel, startRalphd, stopRalphd } from "../support/daemon-harness.js";
import { gitEnv } from "../support/loop-fixtures.js";
import { SoakDriver, footprint, soakBranches, workspaceEntries, type LoopKind } from "../support/soak.js";
import { startTestNetwork } from "../support/ziti-network.js";

const LOOPS = 30;
let network: Awaited<ReturnType<typeof startTestNetwork>>;
let model: ScriptedModel;
let daemon: Awaited<ReturnType<typeof startRalphd>>;
let projectRoot: string;
let soak: SoakDriver;
let client: ControlClient;

before(async () => {
  Object.assign(process.env, gitEnv);
  network = await startTestNetwork("ralph-soak");
  model = await startScriptedModel({ script: { kind: "ralph-agent" } });
  // Retention 0: 'ralph prune' removes every finished loop's worktree at once.
  offerScriptedModel(network.home, model.baseUrl, { retention: { worktreeDays: 0 }, reconcileIntervalSeconds: 5 });
  projectRoot = mkdtempSync(join(tmpdir(), "ralph-soak-project-"));
  const project = makeProject(projectRoot, soakBranches(LOOPS));
  daemon = await startRalphd(network.home);
  client = await ControlClient.open();
  soak = new SoakDriver(network.home, model, project, client);
});

after(async () => {
  await client?.close();
  await stopRalphd(daemon);
  await model?.close();
  await network?.stop();
  rmSync(projectRoot, { recursive: true, force: true });
});

async function withMgmt<T>(fn: (m: ManagementClient) => Promise<T>): Promise<T> {
  const m = await localManagementClient();
  try {
    return await fn(m);
  } finally {
    await m.close();
  }
}

/** The terminators (instance ids, or "" for a plain hosting) the controller lists for the daemon's two services. */
const registrations = () =>
  withMgmt(async (m) => {
    const of = async (name: string) => {
      const s = (await m.getService(name))!;
      return (await m.request<{ identity?: string }[]>("GET", `/services/${s.id}/terminators`)).map((t) => t.identity ?? "").sort();
    };
    return { control: await of(controlServiceName("local")), loops: await of(loopsServiceName("local")) };
  });

const runningRows = async () => (await expectOk(client.remoteName, client.api.loops.$get())).loops.filter((l) => ["starting", "running"].includes(l.status)).length;

/** A loop whose iteration stalls; the network goes down while it runs and comes back once it has ended. */
async function loopEndingWhileControllerDown(): Promise<string> {
  model.setScript({ kind: "hang" });
  const before = model.requestCount();
  const id = await soak.start("ralph/stop", { maxIterations: 1, stallTimeoutSeconds: 5 });
  await waitFor(() => model.requestCount() > before, { what: "its first model request", timeoutMs: 60_000 });
  assert.ok((await registrations()).loops.includes(id), "the running loop is a terminator");
  assert.ok(await zitiDown(), "the network went down");
  // The client cannot reach the daemon now: its state DB says when the loop has ended.
  const db = new Database(join(network.home, "daemon", "state.db"), { readonly: true, fileMustExist: true });
  try {
    await waitFor(() => !["starting", "running"].includes((db.prepare("SELECT status FROM loops WHERE id = ?").get(id) as { status: string }).status), {
      what: `loop ${id} to end while the controller is down`,
      timeoutMs: 60_000,
      intervalMs: 200,
    });
  } finally {
    db.close();
  }
  await zitiUp();
  let lastError = "";
  await waitFor(() => soak.cli(["ls", "--json"]).then(() => true, (err: Error) => void (lastError = err.message)), {
    what: "the daemon to be reachable again",
    timeoutMs: 120_000,
    intervalMs: 1000,
  }).catch((err: Error) => {
    const hostLog = readFileSync(join(network.home, "daemon", "ziti-host.log"), "utf8").split("\n").filter((l) => !l.includes("level=debug") && !l.includes('"terminators"')).slice(-40).join("\n");
    throw new Error(`${err.message}\nlast: ${lastError}\nralphd:\n${daemon.log().slice(-3000)}\nhost helper:\n${hostLog}`);
  });
  // The test's own long-lived client saw the network go: it gets a new one, as a user's next command would.
  await client.close();
  client = soak.client = await ControlClient.open();
  return id;
}

test(`${LOOPS} loops in sequence leave the daemon as they found it`, async (t) => {
  const first = await soak.run("complete");
  await soak.prune();
  const registered = await registrations();
  const baseline = await waitFor(
    () => {
      const f = footprint(daemon.pid);
      // The first loop's opencode has exited once ralphd is back to itself and its host helper.
      return f.processes <= 2 ? f : undefined;
    },
    { what: "the first loop's processes to exit", timeoutMs: 30_000 },
  );
  const baselineDisk = await soak.disk(new Date(0).toISOString());
  assert.deepEqual(registered, { control: [""], loops: [] }, `after loop ${first}: the control service only`);

  // Failing loops back off between their failed iterations: fewer of them keeps the test short.
  const kinds: LoopKind[] = ["fail", "complete", "stop", "complete", "stop", "stop"];
  const seen = new Map<string, number>();
  const took = new Map<string, number>();
  let downId = "";
  for (let i = 1; i < LOOPS; i++) {
    if (i === 2) {
      downId = await loopEndingWhileControllerDown();
      continue;
    }
    const kind = kinds[i % kinds.length]!;
    const t0 = Date.now();
    await soak.run(kind);
    seen.set(kind, (seen.get(kind) ?? 0) + 1);
    took.set(kind, (took.get(kind) ?? 0) + Date.now() - t0);
  }
  for (const [kind, ms] of took) t.diagnostic(`${kind}: ${Math.round(ms / seen.get(kind)!)} ms per loop`);
  assert.ok(seen.size === 3 && [...seen.values()].every((n) => n >= 4), `each kind ran: ${JSON.stringify([...seen])}`);
  assert.notEqual((await soak.status(downId)), "running");

  const pruneStarted = new Date().toISOString();
  const pruned = await soak.prune();
  assert.equal(pruned.loops.length, LOOPS - 1, "every loop after the first had its worktree removed");
  assert.ok(pruned.mirrors >= 1, "the project's mirror went with the last loop that used it");
  assert.deepEqual(workspaceEntries(network.home), { worktrees: [], mirrors: [], state: [] }, "no worktree, mirror or per-loop state is left");
  assert.equal(await runningRows(), 0, "no row says running");
  // The controller drops the terminator of the loop that ended while it was down once it finds its host gone.
  await waitFor(async () => JSON.stringify(await registrations()) === JSON.stringify(registered), { what: "the Ziti registrations to return to the baseline", timeoutMs: 120_000, intervalMs: 1000 });
  const end = await waitFor(
    () => {
      const f = footprint(daemon.pid);
      return f.processes <= baseline.processes && f.fds <= baseline.fds ? f : undefined;
    },
    { what: `the daemon's processes and open files to return to the baseline ${JSON.stringify(baseline)}, now ${JSON.stringify(footprint(daemon.pid))}`, timeoutMs: 30_000 },
  );
  assert.ok(end.processes <= baseline.processes);
  const disk = await soak.disk(pruneStarted);
  // Only the empty directories are left, as after the first loop.
  assert.equal(disk.worktreesBytes, baselineDisk.worktreesBytes);
  assert.equal(disk.mirrorsBytes, baselineDisk.mirrorsBytes);
  // What stays: the loops' rows and events, and a few lines each in the host helper's (bounded) log.
  assert.ok(disk.totalBytes - baselineDisk.totalBytes < 2 ** 20, `the disk is back within 1 MB of the baseline: ${JSON.stringify({ baselineDisk, disk })}`);
  t.diagnostic(`disk after ${LOOPS} loops and pruning: +${disk.totalBytes - baselineDisk.totalBytes} bytes over the baseline`);
});

test("a network that crashes is started again, and the daemon can be reached again", async () => {
  const shell = JSON.parse(readFileSync(join(network.home, "ziti", "network.json"), "utf8")).pid as number;
  const ziti = findProcesses((argv) => argv.includes("quickstart") && argv.includes(join(network.home, "ziti", "quickstart"))).filter((pid) => pid !== shell);
  assert.equal(ziti.length, 1, "one quickstart process runs under the network's shell");
  process.kill(ziti[0]!, "SIGSEGV");
  await waitFor(() => readFileSync(join(network.home, "ziti", "quickstart.log"), "utf8").includes("ralph: the OpenZiti network exited"), { what: "the crash to be noticed", timeoutMs: 30_000 });
  await waitFor(() => soak.cli(["ls", "--json"]).then(() => true, () => false), { what: "the daemon to be reachable through the restarted network", timeoutMs: 120_000, intervalMs: 1000 });
  assert.ok(pidAlive(shell), "the same network service carries on");
});
