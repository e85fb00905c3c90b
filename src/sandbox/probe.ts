import { delimiter, join } from "node:path";
import { execa } from "execa";
import { isExecutable } from "../util/access.js";
import { UnavailableError } from "../util/errors.js";
import { limitsKind, type LimitsKind } from "./limits.js";

/** What this host offers a loop's sandbox. */
export interface SandboxSupport {
  /** bubblewrap's path, when installed. */
  bwrap?: string;
  version?: string;
  /** Why no sandbox can be made here, with the fix; undefined when one can. */
  problem?: string;
  /** ralphd runs as root: each sandbox drops to an unprivileged user of its own. */
  root: boolean;
  limits: { kind: LimitsKind; detail: string };
}

const OPT_OUT = `or run loops without a sandbox, knowing the agent then reaches everything this user can: sandbox: "off" in the daemon config, --no-sandbox for ralph run`;

function findBwrap(env: NodeJS.ProcessEnv): string | undefined {
  const candidates = env.RALPH_BWRAP ? [env.RALPH_BWRAP] : (env.PATH ?? "/usr/bin:/bin").split(delimiter).map((d) => join(d, "bwrap"));
  return candidates.find(isExecutable);
}

/** Why a trial sandbox failed, in words that lead to the fix. */
function diagnose(stderr: string): string {
  if (/namespace|uid map|setting up uid|Operation not permitted|Permission denied/i.test(stderr)) {
    return `bubblewrap cannot create the namespaces a sandbox needs (${stderr.trim().split("\n")[0]}): user namespaces are probably disabled. Enable them (sysctl kernel.unprivileged_userns_clone=1 and user.max_user_namespaces above 0; on Ubuntu 24.04+, an AppArmor profile for bwrap or kernel.apparmor_restrict_unprivileged_userns=0), ${OPT_OUT}`;
  }
  return `bubblewrap failed to make a trial sandbox (${stderr.trim().split("\n")[0] || "no message"}): ${OPT_OUT}`;
}

const probed = new Map<string, Promise<SandboxSupport>>();

/** Probed once per process (and bubblewrap): bubblewrap, a trial sandbox with the namespaces loops get, and how limits are enforced. */
export function sandboxSupport(env: NodeJS.ProcessEnv = process.env): Promise<SandboxSupport> {
  const key = env.RALPH_BWRAP ?? "";
  const cached = probed.get(key);
  if (cached) return cached;
  const probe = (async (): Promise<SandboxSupport> => {
    const root = process.getuid?.() === 0;
    const limits = limitsKind();
    const bwrap = findBwrap(env);
    if (!bwrap) {
      return { root, limits, problem: `bubblewrap (bwrap) is not installed, and every loop runs in a bubblewrap sandbox: install it (e.g. 'sudo apt-get install bubblewrap', 'dnf install bubblewrap'), ${OPT_OUT}` };
    }
    const version = (await execa(bwrap, ["--version"], { reject: false })).stdout.trim().replace(/^bubblewrap\s*/, "");
    const userns = root ? [] : ["--unshare-user", "--disable-userns"];
    const trial = await execa(
      bwrap,
      ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", ...userns, "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"],
      { reject: false, timeout: 10_000 },
    );
    if (trial.exitCode !== 0) return { bwrap, version, root, limits, problem: diagnose(trial.stderr) };
    return { bwrap, version, root, limits };
  })();
  probed.set(key, probe);
  return probe;
}

/** bubblewrap's path; refused with the cause and the fix where no sandbox can be made. */
export async function requireSandbox(): Promise<SandboxSupport & { bwrap: string }> {
  const s = await sandboxSupport();
  if (s.problem || !s.bwrap) throw new UnavailableError(s.problem ?? "no sandbox");
  return s as SandboxSupport & { bwrap: string };
}
