import { InvalidArgumentError, type Command } from "commander";
import { parseNetRule } from "../sandbox/net-rules.js";

// Option parsers and shared option texts of the command definitions.

export const positiveInt = (name: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a whole number of at least 1`);
  return n;
};

export const positiveAmount = (name: string) => (v: string): number => {
  const n = Number(v.replace(/^\$/, ""));
  if (!Number.isFinite(n) || n <= 0 || v.trim() === "") throw new InvalidArgumentError(`${name} must be a positive amount in US dollars, e.g. 2.50`);
  return n;
};

export const permissionPolicy = (v: string): "reject" | "allow" => {
  if (v !== "reject" && v !== "allow") throw new InvalidArgumentError(`--on-permission must be "reject" or "allow"`);
  return v;
};

/** A loop or local run id: what the daemon and `ralph run` print (8 hex digits); never a path. */
export const loopId = (v: string): string => {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(v) || /^\.+$/.test(v)) throw new InvalidArgumentError(`"${v.slice(0, 80)}" is not a loop id: 'ralph ls' lists them`);
  return v;
};

export const remoteOption = "--remote <name>";
export const remoteHelp = "the remote (default: the only one)";
/** For commands on one loop: its id finds its remote. */
export const loopRemoteHelp = "the loop's remote (default: the remote that has a loop with this id)";

/** Repeatable --allow-net HOST[:PORT], checked as it is read. */
export const allowNetOption = "--allow-net <host[:port]>";
export const allowNetHelp = "let the loop's sandbox reach this host too (repeatable; no port: 80 and 443; *.example.com for subdomains)";
export const collectHosts = (v: string, previous: string[] = []): string[] => {
  try {
    parseNetRule(v);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return [...previous, v];
};

/** The sandbox's limits a loop may ask for (within the daemon's ceilings). */
export function limitOptions(command: Command): Command {
  return command
    .option("--memory <mb>", "memory limit of the loop's sandbox, in MB (default: the daemon's)", positiveInt("--memory"))
    .option("--max-processes <n>", "process and thread limit of the loop's sandbox (default: the daemon's)", positiveInt("--max-processes"))
    .option("--cpu-weight <n>", "CPU share of the loop's sandbox against other loops, 100 = equal (default: the daemon's)", positiveInt("--cpu-weight"));
}

/** The limits a command line asks for, if any. */
export const limitsOf = (o: { memory?: number; maxProcesses?: number; cpuWeight?: number }) => {
  const limits = { ...(o.memory ? { memoryMb: o.memory } : {}), ...(o.maxProcesses ? { pids: o.maxProcesses } : {}), ...(o.cpuWeight ? { cpuWeight: o.cpuWeight } : {}) };
  return Object.keys(limits).length ? limits : undefined;
};
