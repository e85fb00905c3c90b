import { InvalidArgumentError } from "commander";

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
