import { readFileSync, readdirSync, readlinkSync } from "node:fs";

export interface Listener {
  pid: number;
  command: string;
  address: string;
  port: number;
}

/** Decodes /proc/net/tcp{,6} addresses ("0100007F:1F90") to text and port. */
function decode(hexAddr: string): { address: string; port: number } {
  const [ip, port] = hexAddr.split(":") as [string, string];
  const bytes = Buffer.from(ip, "hex");
  let address: string;
  if (bytes.length === 4) address = [...bytes].reverse().join(".");
  else {
    // Four little-endian 32-bit words.
    const words = [0, 4, 8, 12].map((o) => Buffer.from(bytes.subarray(o, o + 4)).reverse().toString("hex"));
    address = words.join("").replace(/(.{4})(?!$)/g, "$1:");
  }
  return { address, port: parseInt(port, 16) };
}

export const isLoopbackAddress = (a: string): boolean =>
  a.startsWith("127.") || a === "0000:0000:0000:0000:0000:0000:0000:0001" || /^0000:0000:0000:0000:0000:ffff:7f/.test(a);

/** `root` and its descendants, by their parent links in /proc (Linux). */
export function processTree(root: number): number[] {
  const parent = new Map<number, number>();
  for (const e of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      // The command may hold spaces and parentheses; ppid follows the last ")".
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      parent.set(Number(e), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      /* gone */
    }
  }
  const inTree = (pid: number): boolean => {
    for (let p: number | undefined = pid; p && p > 1; p = parent.get(p)) if (p === root) return true;
    return false;
  };
  return [...parent.keys()].filter(inTree);
}

/** Every listening TCP socket held by `root` or its descendants (Linux /proc). */
export function listenersOfTree(root: number): Listener[] {
  const listening = new Map<string, { address: string; port: number }>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const row of readFileSync(table, "utf8").split("\n").slice(1)) {
      const f = row.trim().split(/\s+/);
      if (f.length > 9 && f[3] === "0A") listening.set(f[9]!, decode(f[1]!));
    }
  }
  const out: Listener[] = [];
  for (const pid of processTree(root)) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      const l = inode ? listening.get(inode) : undefined;
      if (l) out.push({ pid, command: readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").slice(0, 3).join(" "), ...l });
    }
  }
  return out;
}

export interface Bind {
  pid: number;
  family: "AF_INET" | "AF_INET6" | "AF_UNIX";
  /** An IP address, or a Unix socket's path. */
  address: string;
  port: number;
}

/**
 * Every inet and Unix-socket bind() in an `strace -f -e trace=bind` log, successful or not:
 * unlike polling for listeners, it cannot miss a socket that lives briefly.
 */
export function bindsInStrace(log: string): Bind[] {
  const binds: Bind[] = [];
  for (const line of log.split("\n")) {
    const m = /^(\d+)\s+bind\(\d+, \{sa_family=(AF_INET6?), (?:sin6?_port=htons\((\d+)\))?.*?(?:inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"|(in6addr_any)|(in6addr_loopback))/.exec(line);
    const unix = /^(\d+)\s+bind\(\d+, \{sa_family=AF_UNIX, sun_path="([^"]*)"/.exec(line);
    if (unix) binds.push({ pid: Number(unix[1]), family: "AF_UNIX", port: 0, address: unix[2]! });
    if (!m) continue;
    binds.push({ pid: Number(m[1]), family: m[2] as Bind["family"], port: Number(m[3] ?? 0), address: m[4] ?? m[5] ?? (m[6] ? "::" : "::1") });
  }
  return binds;
}

/** A Unix socket is no network listener: it counts as loopback. */
export const isLoopbackBind = (b: Bind): boolean =>
  b.family === "AF_UNIX" || (b.family === "AF_INET" ? b.address.startsWith("127.") : b.address === "::1" || /^::ffff:127\./.test(b.address));
