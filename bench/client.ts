// What a user waits for at the prompt, measured through the real CLI: `ralph
// --help` beside a bare `node`, and `ralph ls` through the overlay with a
// warm client agent, a cold one, and no agent (a dialer of the command's
// own), interleaved. And what an idle client costs the controller: the
// requests the agent's dialer makes in a quiet minute, counted on a relay
// between it and the controller.
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer, connect, type Socket } from "node:net";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";
import { upsertRemote, readRemotes } from "../src/client/remotes.js";
import { ensureLocalDaemon } from "../src/daemon/launcher.js";
import { LOCAL_NAME } from "../src/ziti/defaults.js";
import { cli } from "../test/support/daemon-harness.js";
import { summarize, table } from "./stats.js";

const run = promisify(execFile);

async function timed(args: string[], env: NodeJS.ProcessEnv = {}, command = cli): Promise<number> {
  const t0 = performance.now();
  await run(process.execPath, command === "" ? args : [command, ...args], { env: { ...process.env, ...env } });
  return performance.now() - t0;
}

/**
 * A TCP relay to the controller that counts requests: each burst of bytes
 * from the client after a quiet gap is one request (TLS hides the rest).
 */
async function countingRelay(target: { host: string; port: number }) {
  let requests = 0;
  let bytes = 0;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    sockets.add(client).add(upstream);
    let last = 0;
    client.on("data", (d) => {
      const now = performance.now();
      if (now - last > 50) requests++;
      last = now;
      bytes += d.length;
      upstream.write(d);
    });
    upstream.on("data", (d) => client.write(d));
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      a.on("close", () => b.destroy());
      a.on("error", () => b.destroy());
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    count: () => requests,
    bytes: () => bytes,
    reset: () => (requests = bytes = 0),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

export async function runClientBench(opts: { home: string; samples: number; idleSeconds: number; log: (s: string) => void }) {
  const { home, samples, log } = opts;
  const env = { RALPH_HOME: home };
  const daemon = await ensureLocalDaemon();
  try {
    log(`ralph --help beside node -e 0, ${samples * 4} each, interleaved`);
    const help: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < samples * 4; i++) {
      bare.push(await timed(["-e", "0"], env, ""));
      help.push(await timed(["--help"], env));
    }

    log(`ralph ls: warm agent, cold agent, no agent, ${samples * 2} each, interleaved`);
    const warm: number[] = [];
    const cold: number[] = [];
    const direct: number[] = [];
    for (let i = 0; i < samples * 2; i++) {
      await timed(["agent", "stop"], env);
      cold.push(await timed(["ls", "--remote", LOCAL_NAME], env));
      warm.push(await timed(["ls", "--remote", LOCAL_NAME], env));
      direct.push(await timed(["ls", "--remote", LOCAL_NAME], { ...env, RALPH_AGENT: "off" }));
    }

    log(`controller requests of an idle client: the agent's dialer through a counting relay, ${opts.idleSeconds} s`);
    const local = readRemotes().remotes[LOCAL_NAME]!;
    const identity = JSON.parse(readFileSync(local.identityFile, "utf8")) as { ztAPI: string };
    const controller = new URL(identity.ztAPI);
    const relay = await countingRelay({ host: controller.hostname, port: Number(controller.port) });
    let idlePerMinute: number;
    let added = false;
    try {
      const relayed = join(home, "client", "bench-relayed-identity.json");
      writeFileSync(relayed, JSON.stringify({ ...identity, ztAPI: identity.ztAPI.replace(`:${controller.port}`, `:${relay.port}`) }), { mode: 0o600 });
      upsertRemote("bench-relayed", { identityFile: relayed, service: local.service });
      added = true;
      await timed(["ls", "--remote", "bench-relayed"], env);
      const login = relay.count();
      relay.reset();
      await new Promise((r) => setTimeout(r, opts.idleSeconds * 1000));
      idlePerMinute = (relay.count() * 60) / opts.idleSeconds;
      log(`the dialer's login and first request: ${login} burst(s) of requests to the controller; idle: ${relay.count()} in ${opts.idleSeconds} s (${relay.bytes()} bytes)`);
    } finally {
      await timed(["agent", "stop"], env);
      await relay.close();
      if (added) await timed(["remote", "rm", "bench-relayed"], env);
    }

    const [helpS, bareS, warmS, coldS, directS] = [help, bare, warm, cold, direct].map(summarize) as [ReturnType<typeof summarize>, ...ReturnType<typeof summarize>[]];
    return {
      help_ms: { ralph_help: helpS, node_bare: bareS },
      ls_ms: { warm_agent: warmS, cold_agent: coldS, no_agent: directS },
      controller_requests_per_idle_minute: idlePerMinute,
      tables: [
        "`ralph --help` beside a bare `node -e 0` (ms)\n" + table([["node -e 0", bareS!], ["ralph --help", helpS]], bareS!),
        "`ralph ls` through the overlay (ms): warm client agent, cold (agent started by the command), no agent (RALPH_AGENT=off)\n" +
          table([["warm agent", warmS!], ["cold agent", coldS!], ["no agent", directS!]], warmS!),
        `Controller requests of an idle client (the agent's dialer, counted on a relay): ${idlePerMinute.toFixed(1)} per minute`,
      ],
    };
  } finally {
    if (daemon.startedHere) await daemon.stop();
  }
}
