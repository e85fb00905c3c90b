import { join } from "node:path";
import { homeDir } from "../config/paths.js";
import { PACKAGE_ROOT } from "../version.js";
import { SupervisedProcess } from "../process/supervisor.js";
import { waitFor } from "../util/wait.js";
import { runningDaemonPid } from "./main.js";

export interface LocalDaemon {
  pid: number;
  /** False when a ralphd was already running for this RALPH_HOME (it is left alone). */
  startedHere: boolean;
  stop(): Promise<void>;
}

/** The built daemon, also when this module runs from source (tests, bench). */
const ralphdScript = (): string => join(PACKAGE_ROOT, "dist", "cli", "ralphd.js");

/**
 * Starts ralphd for this RALPH_HOME in the background, unless one runs, and
 * resolves once it has registered its control service.
 */
export async function ensureLocalDaemon(): Promise<LocalDaemon> {
  const running = runningDaemonPid();
  if (running) return { pid: running, startedHere: false, stop: async () => undefined };
  let ready = false;
  const logFile = join(homeDir("daemon"), "ralphd.log");
  const proc = await SupervisedProcess.spawn({
    name: "ralphd",
    command: process.execPath,
    args: [ralphdScript()],
    logFile,
    onLine: (line) => (ready ||= / ready: control service /.test(line)),
  });
  const died = new AbortController();
  void proc.exited.then(() => died.abort(new Error(`ralphd stopped during start-up: ${proc.describeExit()}`)));
  try {
    await waitFor(() => ready, { what: `ralphd to register its control service (log: ${logFile})`, timeoutMs: 90_000, intervalMs: 100, signal: died.signal });
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return { pid: proc.pid, startedHere: true, stop: async () => void (await proc.stop(30_000)) };
}
