import { InvalidArgumentError, type Command } from "commander";
import { parseNetRule } from "../sandbox/net-rules.js";
import { BOUNDS } from "../contract/bounds.js";

// Option parsers and shared option texts of the command definitions.

/** A whole number in decimal digits, within bounds (by default, at least 1): "0x10", "1e3" and "12abc" are refused. */
export const positiveInt =
  (name: string, bounds: { min: number; max: number } = { min: 1, max: Number.MAX_SAFE_INTEGER }) =>
  (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || n < bounds.min || n > bounds.max) {
      throw new InvalidArgumentError(`${name} must be a whole number from ${bounds.min} to ${bounds.max}`);
    }
    return n;
  };

/** A dollar amount in decimal ("2.50", "$2.50"), above 0 and at most the contract's ceiling. */
export const positiveAmount = (name: string) => (v: string): number => {
  const text = v.trim().replace(/^\$/, "");
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || n <= BOUNDS.maxCostUsd.min || n > BOUNDS.maxCostUsd.max) {
    throw new InvalidArgumentError(`${name} must be an amount in US dollars above 0 and at most ${BOUNDS.maxCostUsd.max}, e.g. 2.50`);
  }
  return n;
};

/** A loop setting checked against the contract's bounds, as the daemon will check it. */
export const boundedInt = (name: string, key: Exclude<keyof typeof BOUNDS, "maxCostUsd">) => positiveInt(name, BOUNDS[key]);

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
