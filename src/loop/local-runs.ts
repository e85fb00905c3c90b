import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { homeDir, ralphHome } from "../config/paths.js";
import { pidAlive } from "../process/supervisor.js";

/**
 * A local `ralph run` under RALPH_HOME/runs/ID: its opencode state and log,
 * and an inbox that `ralph say ID` drops the owner's guidance into.
 */
export interface LocalRun {
  id: string;
  dir: string;
  /** Reads and removes the pending guidance, oldest first. */
  takeGuidance(): string[];
  /** The run has ended: nothing more can be said to it. */
  close(): void;
}

const RUN_ID = /^[0-9a-f]{8}$/;
const inboxOf = (dir: string) => join(dir, "guidance");
const markerOf = (dir: string) => join(dir, "run.json");

/** Ended runs' logs are kept this long, then removed when a new run starts. */
const KEEP_ENDED_MS = 7 * 86_400_000;

function removeOldRuns(now = Date.now()): void {
  const root = homeDir("runs");
  for (const name of readdirSync(root)) {
    const dir = join(root, name);
    if (existsSync(markerOf(dir))) continue;
    if (now - statSync(dir).mtimeMs > KEEP_ENDED_MS) rmSync(dir, { recursive: true, force: true });
  }
}

export function registerLocalRun(taskDir: string): LocalRun {
  removeOldRuns();
  const id = randomBytes(4).toString("hex");
  const dir = homeDir("runs", id);
  mkdirSync(inboxOf(dir), { mode: 0o700 });
  writeFileSync(markerOf(dir), JSON.stringify({ pid: process.pid, taskDir }) + "\n", { mode: 0o600 });
  return {
    id,
    dir,
    takeGuidance: () => {
      const inbox = inboxOf(dir);
      // Only finished writes: a note is written under a dot name, then renamed.
      const names = readdirSync(inbox).filter((n) => n.endsWith(".md")).sort();
      return names.map((n) => {
        const text = readFileSync(join(inbox, n), "utf8");
        rmSync(join(inbox, n));
        return text;
      });
    },
    // Only the log outlives the run: its sandbox's HOME, /tmp and sockets go with it.
    close: () => {
      rmSync(markerOf(dir), { force: true });
      rmSync(inboxOf(dir), { recursive: true, force: true });
      rmSync(join(dir, "box"), { recursive: true, force: true });
    },
  };
}

/** The directory of a local run that is still going, if `id` names one. */
export function runningLocalRun(id: string): string | undefined {
  if (!RUN_ID.test(id)) return undefined;
  const dir = join(ralphHome(), "runs", id);
  const marker = markerOf(dir);
  if (!existsSync(marker)) return undefined;
  const { pid } = JSON.parse(readFileSync(marker, "utf8")) as { pid: number };
  return pidAlive(pid) ? dir : undefined;
}

/** Queues guidance for the next iteration of a running local loop. */
export function sayToLocalRun(dir: string, text: string): void {
  const name = `${Date.now().toString().padStart(15, "0")}-${randomBytes(3).toString("hex")}.md`;
  const tmp = join(inboxOf(dir), `.${name}`);
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, join(inboxOf(dir), name));
}
