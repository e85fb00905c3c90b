/**
 * The first program inside a loop's sandbox (or beside an unsandboxed
 * opencode): it drops root's privileges when asked, bridges opencode's port to
 * a Unix socket the daemon reaches it by, bridges a loopback port to the
 * egress proxy's socket, then runs opencode and exits with it. It imports
 * nothing but Node's own modules: only this file is mounted into the sandbox.
 */
import { spawn } from "node:child_process";
import { chmodSync, rmSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";

export interface InitConfig {
  /** Set when the sandbox starts as root: the unprivileged user opencode runs as. */
  user?: { uid: number; gid: number };
  /** opencode's own listener inside, and the socket the daemon reaches it by. */
  opencode: { argv: string[]; port: number; socket: string };
  /** A loopback port inside that leads to the egress proxy's socket outside. */
  proxy?: { port: number; socket: string };
}

/** Joins two sockets, each end of stream passed on, either error closing both. */
function join(a: Socket, b: Socket): void {
  a.pipe(b);
  b.pipe(a);
  const close = () => {
    a.destroy();
    b.destroy();
  };
  a.on("error", close);
  b.on("error", close);
  a.on("close", close);
  b.on("close", close);
}

function listen(server: ReturnType<typeof createServer>, ...args: [string] | [number, string]): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(...(args as [number, string]), () => resolve());
  });
}

async function main(config: InitConfig): Promise<void> {
  if (config.user) {
    // Groups, then group, then user: after setuid nothing else may change.
    process.setgroups!([]);
    process.setgid!(config.user.gid);
    process.setuid!(config.user.uid);
  }
  if (config.proxy) {
    const socket = config.proxy.socket;
    await listen(
      createServer((inside) => join(inside, connect(socket))),
      config.proxy.port,
      "127.0.0.1",
    );
  }
  rmSync(config.opencode.socket, { force: true });
  const port = config.opencode.port;
  await listen(
    createServer((outside) => join(outside, connect(port, "127.0.0.1"))),
    config.opencode.socket,
  );
  chmodSync(config.opencode.socket, 0o600);
  const [command, ...args] = config.opencode.argv;
  const child = spawn(command!, args, { stdio: ["ignore", "inherit", "inherit"] });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on("SIGTERM", forward);
  process.on("SIGINT", forward);
  child.on("error", (err) => {
    process.stderr.write(`ralph sandbox: cannot start opencode: ${err.message}\n`);
    process.exit(127);
  });
  child.on("exit", (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
}

main(JSON.parse(process.argv[2] ?? "{}") as InitConfig).catch((err: unknown) => {
  process.stderr.write(`ralph sandbox: ${(err as Error).message}\n`);
  process.exit(126);
});
