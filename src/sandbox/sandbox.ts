import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { PACKAGE_ROOT } from "../version.js";
import { bwrapArgs } from "./bwrap.js";
import { startEgressProxy, type EgressProxy } from "./egress-proxy.js";
import type { InitConfig } from "./init.js";
import type { SandboxInfo } from "./info.js";
import { limitGroup, niceOf, type LimitGroup, type LimitHits, type Limits } from "./limits.js";
import { formatNetRule, type NetRule } from "./net-rules.js";
import { requireSandbox } from "./probe.js";
import { userNamespaceFilter } from "./seccomp.js";

/** How a loop is to be run: in a sandbox (the default), or not (an explicit opt-out). */
export interface SandboxPlan {
  enabled: boolean;
  /** Unique on this host (it names the loop's cgroups). */
  name: string;
  /** The loop's own directory on the host: its HOME, /tmp and sockets are made in it, and go with it. */
  dir: string;
  /** The worktree: read-write, and where opencode starts. */
  worktree: string;
  /** More read-write paths (a local run's git dir outside its worktree). */
  rw?: string[];
  /** Read-only inside: git's config and hooks, the mirror's objects, opencode. */
  ro: string[];
  /** What the owner shows read-only besides the system (a toolchain in a home); a `bin` in one goes on PATH. */
  readOnly?: string[];
  /** Files and directories of the system hidden even read-only (secrets only root may read). */
  hide?: string[];
  allow: NetRule[];
  limits: Limits;
  /** ralphd as root: the unprivileged user the sandbox runs as. */
  user?: { uid: number; gid: number };
  /**
   * A sandbox that outlives its daemon (see command) stops itself when the
   * daemon's heartbeat file is older than `seconds`: nothing runs
   * unsupervised for ever.
   */
  orphan?: { heartbeat: string; seconds: number };
  onRefused: (host: string, port: number) => void;
}

export type { SandboxInfo };

export interface OpenSandbox {
  /** The Unix socket opencode answers on (its loopback port bridged out). */
  socket: string;
  info: SandboxInfo;
  /**
   * How to start `argv` (listening on `port` inside) in this sandbox, with
   * `env` as its whole environment. `survivesParent`: the sandbox outlives the
   * process that starts it (ralphd's loops, re-adopted after a restart);
   * otherwise it dies with it, however that dies.
   */
  command(argv: string[], port: number, env: Record<string, string>, survivesParent?: boolean): { command: string; args: string[]; env: NodeJS.ProcessEnv };
  /** Times each limit was hit so far (cgroups only). */
  hits(): LimitHits;
  /** Stops the egress proxy and removes the cgroups, once; the sandbox itself must have ended. */
  close(): Promise<void>;
}

/** opencode's port inside the sandbox: the network namespace is the loop's own. */
export const SANDBOX_OPENCODE_PORT = 4096;
const PROXY_PORT = 3128;
const SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Secrets of the host that only root may read, hidden even from a sandbox that runs as root. */
const ROOT_SECRETS = ["/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/ssh", "/etc/ssl/private", "/etc/sudoers", "/etc/sudoers.d"];

const initScript = (): string => join(PACKAGE_ROOT, "dist", "sandbox", "init.js");

export const socketsOf = (dir: string) => ({ opencode: join(dir, "run", "opencode.sock"), proxy: join(dir, "run", "proxy.sock") });

/** Where a sandbox that stopped itself for want of a daemon says why (beside its dirs, out of its reach). */
const orphanedFile = (dir: string) => join(dir, "orphaned");

/** Why the sandbox in `dir` stopped itself, if it did. */
export function orphanedReason(dir: string): string | undefined {
  try {
    return readFileSync(orphanedFile(dir), "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The launcher's watchdog: while the sandbox runs, it compares the daemon's
 * heartbeat file with the clock, and stops the sandbox once the daemon has
 * been gone too long (its reason written where the next daemon finds it).
 */
const WATCHDOG = `child=$!
if [ -n "$RALPH_HEARTBEAT" ]; then
  ( while kill -0 "$child" 2>/dev/null; do
      sleep "$RALPH_WATCH_EVERY"
      beat=$(stat -c %Y "$RALPH_HEARTBEAT" 2>/dev/null || echo 0)
      if [ $(( $(date +%s) - beat )) -gt "$RALPH_ORPHAN_SECONDS" ]; then
        echo "no ralphd for over $RALPH_ORPHAN_SECONDS s: the loop stopped itself" > "$RALPH_ORPHANED"
        kill -TERM "$child"
        break
      fi
    done ) &
fi
wait "$child"`;

/** The watchdog's settings for a sandbox that outlives its starter, if it has one. */
const watchdogEnv = (plan: SandboxPlan, survivesParent: boolean | undefined): Record<string, string> =>
  survivesParent && plan.orphan
    ? {
        RALPH_HEARTBEAT: plan.orphan.heartbeat,
        RALPH_ORPHAN_SECONDS: String(plan.orphan.seconds),
        RALPH_WATCH_EVERY: String(Math.min(10, Math.max(1, Math.floor(plan.orphan.seconds / 3)))),
        RALPH_ORPHANED: orphanedFile(plan.dir),
      }
    : {};

/** Unix socket paths are limited to 107 bytes. */
function checkSocketPath(path: string): void {
  if (Buffer.byteLength(path) > 107) throw new Error(`the loop's socket path ${path} is over 107 bytes, the most a Unix socket may have: choose a shorter workspaceDir or RALPH_HOME`);
}

/**
 * Makes a loop's sandbox ready to start in: its private directories, its
 * cgroups, its egress proxy. `adopt`: the sandbox runs already (ralphd
 * restarted): its directories and cgroups are reused, and only the proxy,
 * which died with the previous daemon, starts again.
 */
export async function openSandbox(plan: SandboxPlan, opts: { adopt?: boolean } = {}): Promise<OpenSandbox> {
  const sockets = socketsOf(plan.dir);
  checkSocketPath(sockets.opencode);
  const dirs = { home: join(plan.dir, "home"), tmp: join(plan.dir, "tmp"), run: join(plan.dir, "run"), bin: join(plan.dir, "bin") };
  if (!opts.adopt) for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true, mode: 0o700 });
  if (!plan.enabled) {
    return {
      socket: sockets.opencode,
      info: { mode: "off" },
      command: (argv, port, env, survivesParent) => {
        const inner = [process.execPath, initScript(), JSON.stringify({ opencode: { argv, port, socket: sockets.opencode } } satisfies InitConfig)];
        const watch = watchdogEnv(plan, survivesParent);
        if (!watch.RALPH_HEARTBEAT) return { command: inner[0]!, args: inner.slice(1), env: { ...process.env, ...env } };
        return { command: "/bin/sh", args: ["-c", `"$@" &\n${WATCHDOG}`, "sh", ...inner], env: { ...process.env, ...env, ...watch } };
      },
      hits: () => ({ memory: 0, pids: 0 }),
      close: async () => undefined,
    };
  }
  const support = await requireSandbox();
  const user = plan.user;
  if (user && !opts.adopt) for (const d of [dirs.home, dirs.tmp, dirs.run]) chownSync(d, user.uid, user.gid);
  const limits: LimitGroup = limitGroup(plan.name, plan.limits, support.limits.kind);
  let proxy: EgressProxy | undefined;
  try {
    proxy = await startEgressProxy({ socket: sockets.proxy, allow: plan.allow, onRefused: plan.onRefused, owner: user });
  } catch (err) {
    limits.remove();
    throw err;
  }
  const proxyUrl = `http://127.0.0.1:${PROXY_PORT}`;
  const node = process.execPath;
  const underSystem = (p: string) => ["/usr/", "/bin/", "/sbin/", "/lib/", "/opt/"].some((s) => p.startsWith(s));
  const ro = [...plan.ro, ...(plan.readOnly ?? []), initScript(), ...(underSystem(node) ? [] : [node])];
  const toolPath = (plan.readOnly ?? []).flatMap((p) => (basename(p) === "bin" ? [p] : existsSync(join(p, "bin")) ? [join(p, "bin")] : []));
  // Without cgroups: each command the agent runs gets an address-space limit from its shell.
  const rlimit = limits.kind === "rlimit";
  const shell = join(dirs.bin, "bash");
  if (rlimit && !opts.adopt) writeFileSync(shell, `#!/bin/sh\nulimit -v ${plan.limits.memoryMb * 1024} 2>/dev/null\nexec /bin/bash "$@"\n`, { mode: 0o555 });
  if (rlimit) ro.push(shell);
  let closed: Promise<void> | undefined;
  // No user namespaces inside, where bubblewrap's own --disable-userns cannot apply (root) and where it does.
  const seccomp = join(dirs.bin, "seccomp.bpf");
  const filter = userNamespaceFilter();
  if (filter && !opts.adopt) writeFileSync(seccomp, filter, { mode: 0o444 });
  const info: SandboxInfo = { mode: "on", enforcement: limits.kind, limits: plan.limits, allowNet: plan.allow.map(formatNetRule) };

  return {
    socket: sockets.opencode,
    info,
    command: (argv, port, env, survivesParent) => {
      const init: InitConfig = { ...(user ? { user } : {}), opencode: { argv, port, socket: sockets.opencode }, proxy: { port: PROXY_PORT, socket: sockets.proxy } };
      const inner = [node, initScript(), JSON.stringify(init)];
      const sandboxEnv: Record<string, string> = {
        PATH: [...toolPath, ...(underSystem(node) ? [] : [dirname(node)]), SYSTEM_PATH].join(":"),
        LANG: "C.UTF-8",
        TMPDIR: "/tmp",
        ...env,
        HOME: dirs.home,
        // Every tool that honours a proxy goes through the daemon's; the others have no route out.
        HTTP_PROXY: proxyUrl,
        HTTPS_PROXY: proxyUrl,
        http_proxy: proxyUrl,
        https_proxy: proxyUrl,
        ...(rlimit ? { SHELL: shell } : {}),
      };
      const bwrap = bwrapArgs({
        dropTo: user,
        rw: [plan.worktree, ...(plan.rw ?? []), dirs.home, dirs.run],
        ro,
        hide: [...ROOT_SECRETS, ...(plan.hide ?? [])].filter((p) => existsSync(p)),
        tmp: dirs.tmp,
        seccompFd: filter ? 3 : undefined,
        env: sandboxEnv,
        cwd: plan.worktree,
        command: rlimit ? ["/bin/bash", "-c", `ulimit -u ${plan.limits.pids} && exec nice -n ${niceOf(plan.limits.cpuWeight)} "$@"`, "sh", ...inner] : inner,
      });
      // The launcher joins the loop's cgroups, so that everything bubblewrap
      // starts is in them from its first instruction. bubblewrap takes the
      // sandbox down when its parent dies: that is the launcher when the
      // sandbox must outlive its starter, else the starter itself.
      const run = survivesParent ? `"$@" &\n${WATCHDOG}` : 'exec "$@"';
      const join = `IFS=:; for f in $RALPH_CGROUP_PROCS; do echo $$ > "$f" || exit 125; done; ${filter ? 'exec 3<"$RALPH_SECCOMP"; ' : ""}${run}`;
      return {
        command: "/bin/sh",
        args: ["-c", join, "sh", support.bwrap, ...bwrap],
        env: {
          PATH: SYSTEM_PATH,
          RALPH_CGROUP_PROCS: limits.procsFiles.join(":"),
          RALPH_SECCOMP: seccomp,
          ...watchdogEnv(plan, survivesParent),
        },
      };
    },
    hits: () => limits.hits(),
    close: () => (closed ??= (async () => {
      await proxy?.close();
      limits.remove();
    })()),
  };
}
