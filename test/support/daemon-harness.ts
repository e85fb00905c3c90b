import { spawn, execFile, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { scriptedModelConfig, type ModelPrice } from "../../src/model/opencode-config.js";
import { waitFor } from "../../src/util/wait.js";
import { git } from "./loop-fixtures.js";

export const cli = join(process.cwd(), "dist", "cli", "ralph.js");
export const ralphdScript = join(process.cwd(), "dist", "cli", "ralphd.js");
const run = promisify(execFile);

export async function ralph(home: string, args: string[], cwd?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [cli, ...args], { env: { ...process.env, RALPH_HOME: home }, cwd });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** ralphd as a real subprocess (this build's, or `script`), ready once it has registered its control service. */
export async function startRalphd(home: string, env: NodeJS.ProcessEnv = {}, script = ralphdScript): Promise<{ child: ChildProcess; pid: number; home: string; log: () => string }> {
  const logFile = join(home, `ralphd-${Date.now()}.log`);
  let out = "";
  const child = spawn(process.execPath, [script], { env: { ...process.env, ...env, RALPH_HOME: home }, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout!.on("data", (d: Buffer) => (out += d));
  child.stderr!.on("data", (d: Buffer) => (out += d));
  const log = () => out;
  await waitFor(() => out.includes(" ready: ") || (child.exitCode !== null ? Promise.reject(new Error(`ralphd exited: ${out}`)) : false), {
    what: "ralphd to be ready",
    timeoutMs: 60_000,
  });
  writeFileSync(logFile, out);
  return { child, pid: child.pid!, home, log };
}

/**
 * Stops a ralphd started by startRalphd (if it still runs) and waits for it
 * to exit. A test's daemon ends its loops as it goes ('ralphd stop --loops'),
 * so that no sandbox outlives the test.
 */
export async function stopRalphd(daemon: { child: ChildProcess; home: string } | undefined): Promise<void> {
  if (daemon?.child.exitCode !== null || daemon.child.signalCode !== null) return;
  const exited = new Promise((r) => daemon.child.once("exit", r));
  const run = join(daemon.home, "daemon", "run");
  if (existsSync(run)) writeFileSync(join(run, "stop-loops"), "");
  daemon.child.kill("SIGTERM");
  await exited;
}

/**
 * The daemon offers the scripted model to every loop, as an operator would a
 * real provider, through its opencode config; `patch` sets the rest.
 */
export function offerScriptedModel(home: string, baseUrl: string, patch: Record<string, unknown> = {}, price?: ModelPrice): void {
  const opencodeConfigFile = join(home, "daemon-opencode.json");
  writeFileSync(opencodeConfigFile, JSON.stringify(scriptedModelConfig(baseUrl, price)));
  setDaemonConfig(home, { ...patch, opencodeConfigFile });
}

export function setDaemonConfig(home: string, patch: Record<string, unknown>): void {
  const file = join(home, "daemon", "config.json");
  writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, "utf8")), ...patch }, null, 2));
}

/**
 * A local repo whose origin is a file:// bare repo, with one PRD per branch
 * (two stories unless `prdFor` says otherwise).
 * It has no opencode.json: the daemon's own opencode config supplies the model.
 */
export function makeProject(
  root: string,
  branches: string[],
  prdFor: (branch: string) => unknown = (b) => ({ branchName: b, userStories: [{ id: "A1", title: `First on ${b}`, priority: 1 }, { id: "A2", title: `Second on ${b}`, priority: 2 }] }),
): { repo: string; origin: string } {
  const origin = join(root, "origin.git");
  const repo = join(root, "work");
  if (!existsSync(origin)) {
    mkdirSync(root, { recursive: true });
    git(root, "init", "-q", "--bare", origin);
  }
  mkdirSync(join(repo, "task"), { recursive: true });
  git(repo, "init", "-q", "-b", "main");
  writeFileSync(join(repo, "README.md"), "project\n");
  git(repo, "add", "-A");
  git(repo, "commit", "-q", "-m", "init");
  git(repo, "remote", "add", "origin", `file://${origin}`);
  git(repo, "push", "-q", "origin", "main");
  for (const b of branches) {
    git(repo, "switch", "-q", "-c", b, "main");
    mkdirSync(join(repo, "task"), { recursive: true });
    writeFileSync(join(repo, "task", "prd.json"), JSON.stringify(prdFor(b), null, 2));
    git(repo, "add", "-A");
    git(repo, "commit", "-q", "-m", `PRD for ${b}`);
  }
  return { repo, origin };
}
