import { isIP } from "node:net";
import { InvalidInputError } from "../util/errors.js";

/**
 * One host a loop's sandbox may connect to through its egress proxy:
 * `example.com` (ports 80 and 443), `example.com:8080`, `*.example.com`
 * (any subdomain, not the domain itself), `127.0.0.1:11434`, `[::1]:8080`.
 */
export interface NetRule {
  host: string;
  /** undefined: 80 and 443. */
  port?: number;
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

function validHost(host: string): boolean {
  if (isIP(host)) return true;
  const name = host.startsWith("*.") ? host.slice(2) : host;
  return name.length <= 253 && name.split(".").every((l) => LABEL.test(l));
}

/** Parses HOST[:PORT]; refused with what is wrong and how to write it. */
export function parseNetRule(text: string): NetRule {
  const fix = `write HOST or HOST:PORT, e.g. registry.npmjs.org, *.pythonhosted.org, 127.0.0.1:11434 or [::1]:8080`;
  const raw = text.trim().toLowerCase();
  let host = raw;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(raw);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2];
  } else if ((raw.match(/:/g) ?? []).length === 1) {
    [host, portText] = raw.split(":") as [string, string];
  }
  if (!host || !validHost(host)) throw new InvalidInputError(`allowed host "${text}" is not a host name or IP address: ${fix}`);
  if (portText === undefined) return { host };
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535) throw new InvalidInputError(`allowed host "${text}" has no valid port (1-65535): ${fix}`);
  return { host, port };
}

export const formatNetRule = (r: NetRule): string => {
  const host = isIP(r.host) === 6 ? `[${r.host}]` : r.host;
  return r.port === undefined ? host : `${host}:${r.port}`;
};

/** Whether a connection to host:port is allowed by any rule. */
export function allows(rules: readonly NetRule[], host: string, port: number): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, "$1").replace(/\.$/, "");
  return rules.some((r) => {
    const portOk = r.port === undefined ? port === 80 || port === 443 : r.port === port;
    if (!portOk) return false;
    if (r.host.startsWith("*.")) return h.endsWith(r.host.slice(1)) && h.length > r.host.length - 1;
    return r.host === h;
  });
}

/** The rules without repeats, in a stable order (for events and the store). */
export function uniqueRules(rules: readonly NetRule[]): NetRule[] {
  const seen = new Map<string, NetRule>();
  for (const r of rules) seen.set(formatNetRule(r), r);
  return [...seen.values()].sort((a, b) => formatNetRule(a).localeCompare(formatNetRule(b)));
}
