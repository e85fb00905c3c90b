// An ordinary user made for a test, as an operator gives ralphd one: its own
// home, RALPH_HOME and copies of the built helpers (root's cache is not
// readable to it), and a way to run ralph and ralphd as it.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { randomBytes } from "node:crypto";
import { ensureDialerBinary, ensureHostBinary, ensureZitiBinary } from "../../src/ziti/binary.js";
import { waitFor } from "../../src/util/wait.js";
import { cli, ralphdScript } from "./daemon-harness.js";
import { gitEnv } from "./loop-fixtures.js";

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  /** Its directory: home/, ralph/ (RALPH_HOME), bin/, and whatever the test puts there. */
  base: string;
  home: string;
  ralphHome: string;
  env: NodeJS.ProcessEnv;
  /** Makes `path` (and what is under it) the user's. */
  own(path: string): void;
  /** `ralph ...` as the user. */
  ralph(args: string[], cwd?: string, env?: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** A long-running process as the user (ralphd, ralph run). */
  spawn(script: string, args: string[], env?: NodeJS.ProcessEnv): ChildProcess;
  /** ralphd as the user, resolved once it is ready. */
  startRalphd(env?: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; pid: number; stop(): Promise<void> }>;
  remove(): void;
}

export async function createTestUser(): Promise<TestUser> {
  const name = `ralphtest${randomBytes(3).toString("hex")}`;
  execFileSync("useradd", ["--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name]);
  const uid = Number(execFileSync("id", ["-u", name]).toString());
  const gid = Number(execFileSync("id", ["-g", name]).toString());
  const base = mkdtempSync(join(tmpdir(), "ralph-user-"));
  const [home, ralphHome, bin] = ["home", "ralph", "bin"].map((d) => join(base, d)) as [string, string, string];
  for (const d of [home, ralphHome, bin]) mkdirSync(d);
  const binaries: Record<string, string> = {};
  for (const [envVar, built] of [
    ["RALPH_ZITI_BIN", await ensureZitiBinary()],
    ["RALPH_ZITI_HOST_BIN", await ensureHostBinary()],
    ["RALPH_ZITI_DIAL_BIN", await ensureDialerBinary()],
  ] as const) {
    const copy = join(bin, basename(built));
    copyFileSync(built, copy);
    chmodSync(copy, 0o755);
    binaries[envVar] = copy;
  }
  const own = (path: string) => execFileSync("chown", ["-R", `${uid}:${gid}`, path]);
  own(base);
  const env: NodeJS.ProcessEnv = {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    HOME: home,
    RALPH_HOME: ralphHome,
    RALPH_CACHE_DIR: join(base, "cache"),
    ...binaries,
    ...gitEnv,
  };
  const spawnAs = (script: string, args: string[], extra: NodeJS.ProcessEnv = {}, cwd?: string) =>
    spawn(process.execPath, [script, ...args], { uid, gid, cwd: cwd ?? base, env: { ...env, ...extra }, stdio: ["ignore", "pipe", "pipe"] });
  const collect = (child: ChildProcess) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      let stdout = "";
      let stderr = "";
      child.stdout!.on("data", (d: Buffer) => (stdout += d));
      child.stderr!.on("data", (d: Buffer) => (stderr += d));
      child.on("exit", (code) => resolve({ code, stdout, stderr }));
    });
  return {
    name,
    uid,
    gid,
    base,
    home,
    ralphHome,
    env,
    own,
    ralph: (args, cwd, extra) => collect(spawnAs(cli, args, extra, cwd)),
    spawn: (script, args, extra) => spawnAs(script, args, extra),
    startRalphd: async (extra = {}) => {
      const child = spawnAs(ralphdScript, [], extra);
      let out = "";
      child.stdout!.on("data", (d: Buffer) => (out += d));
      child.stderr!.on("data", (d: Buffer) => (out += d));
      await waitFor(() => out.includes(" ready: ") || (child.exitCode !== null ? Promise.reject(new Error(`ralphd (as ${name}) exited: ${out}`)) : false), {
        what: `ralphd as ${name} to be ready`,
        timeoutMs: 60_000,
      });
      return {
        child,
        pid: child.pid!,
        stop: async () => {
          if (child.exitCode !== null || child.signalCode !== null) return;
          const exited = new Promise((r) => child.once("exit", r));
          child.kill("SIGTERM");
          await exited;
        },
      };
    },
    remove: () => {
      // Whatever of the user still runs goes first: userdel refuses a user with processes.
      try {
        execFileSync("pkill", ["-KILL", "-u", name]);
      } catch {
        /* none left */
      }
      execFileSync("userdel", [name]);
      rmSync(base, { recursive: true, force: true });
    },
  };
}
