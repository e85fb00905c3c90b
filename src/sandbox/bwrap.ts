import { existsSync, lstatSync, readlinkSync } from "node:fs";
import { dirname, sep } from "node:path";

/**
 * What a loop's sandbox shows of the host: each path at the same place as on
 * the host (the prompt names the worktree's files by their paths), and
 * nothing else. The root is bubblewrap's own empty tmpfs.
 */
export interface BwrapSpec {
  /** Root starts it and the init drops to this user: no user namespace (it would map to root). */
  dropTo?: { uid: number; gid: number };
  /** Read-write (the worktree, the private HOME and /tmp, the socket dir). */
  rw: string[];
  /** Read-only (binaries, git's config and hooks, the mirror's objects, extra toolchains). */
  ro: string[];
  /** Paths of the read-only system hidden (files become empty, directories empty). */
  hide: string[];
  /** A file descriptor bubblewrap reads its seccomp filter from. */
  seccompFd?: number;
  /** Host directory shown as /tmp. */
  tmp: string;
  env: Record<string, string>;
  cwd: string;
  command: string[];
}

/** The system, read-only: programs, libraries, /etc. Nothing of any user's. */
const SYSTEM = ["/usr", "/etc", "/opt", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

const depth = (p: string) => p.split(sep).length;

/** Every directory above `path`, outermost first ("/a/b/c" -> "/a", "/a/b"). */
function ancestors(path: string): string[] {
  const out: string[] = [];
  for (let d = dirname(path); d !== "/" && d !== "."; d = dirname(d)) out.unshift(d);
  return out;
}

export function bwrapArgs(spec: BwrapSpec): string[] {
  const args = [
    // Its own processes, network (only lo), IPC and host name; no view of the host's cgroups.
    "--unshare-pid",
    "--unshare-net",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    // Killed with everything in it when bubblewrap's monitor dies; no terminal to inject into.
    "--die-with-parent",
    "--new-session",
  ];
  if (spec.dropTo) {
    // Just what the init needs to become the sandbox's user; it has none left after.
    args.push("--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID");
  } else {
    // An ordinary user gets a user namespace, and no nested one to rearrange mounts in.
    args.push("--unshare-user", "--disable-userns");
  }
  for (const path of SYSTEM) {
    if (!existsSync(path)) continue;
    if (lstatSync(path).isSymbolicLink()) args.push("--symlink", readlinkSync(path), path);
    else args.push("--ro-bind", path, path);
  }
  for (const path of spec.hide) {
    if (lstatSync(path).isDirectory()) args.push("--tmpfs", path);
    else args.push("--ro-bind", "/dev/null", path);
  }
  args.push("--proc", "/proc", "--dev", "/dev", "--bind", spec.tmp, "/tmp");
  const made = new Set<string>(["/tmp"]);
  // Mounts of the host's own directories: what lies under them exists already.
  const hostMounts = [...SYSTEM];
  const mounts = [...spec.rw.map((p) => ({ p, flag: "--bind" })), ...spec.ro.map((p) => ({ p, flag: "--ro-bind" }))]
    // Outer before inner: a read-only file inside the read-write worktree goes on top of it.
    .sort((a, b) => depth(a.p) - depth(b.p));
  // The way to a mount under the private /tmp is a read-only tmpfs, not part of that /tmp: nothing is written beside the mount.
  const readOnlyWays: string[] = [];
  for (const { p, flag } of mounts) {
    const way = ancestors(p);
    if (way[0] === "/tmp" && way[1] && !made.has(way[1])) {
      args.push("--perms", "0755", "--tmpfs", way[1]);
      made.add(way[1]);
      readOnlyWays.push(way[1]);
    }
    // bubblewrap makes missing parents 0700 root; the dropped user must pass through them.
    for (const dir of way) {
      if (made.has(dir) || (hostMounts.some((m) => dir.startsWith(m + sep)) && existsSync(dir))) continue;
      args.push("--perms", "0755", "--dir", dir);
      made.add(dir);
    }
    args.push(flag, p, p);
    made.add(p);
    hostMounts.push(p);
  }
  // What bubblewrap made to hold the mounts stays as it is: nothing is written beside them.
  for (const way of [...readOnlyWays, "/"]) args.push("--remount-ro", way);
  args.push("--chdir", spec.cwd, "--clearenv");
  for (const [k, v] of Object.entries(spec.env)) args.push("--setenv", k, v);
  if (spec.seccompFd !== undefined) args.push("--seccomp", String(spec.seccompFd));
  args.push("--", ...spec.command);
  return args;
}
