import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../src/util/ports.js";
import { zitiDown, zitiUp, type LocalNetwork } from "../../src/ziti/network.js";

/** A real quickstart network in a private RALPH_HOME, torn down afterwards. */
export async function startTestNetwork(prefix: string): Promise<{ home: string; net: LocalNetwork; stop(): Promise<void> }> {
  const home = mkdtempSync(join(tmpdir(), `${prefix}-`));
  process.env.RALPH_HOME = home;
  // Free ports, not the fixed defaults: test files and a user's own network may run at once.
  const net = await zitiUp({ ctrlPort: await freePort(), routerPort: await freePort() });
  return {
    home,
    net,
    stop: async () => {
      process.env.RALPH_HOME = home;
      // A network that died (or crashed and was started again) under a test says why, before its home is gone.
      const log = join(home, "ziti", "quickstart.log");
      const restarts = existsSync(log) ? readFileSync(log, "utf8").split("\n").filter((l) => l.startsWith("ralph: the OpenZiti network exited")) : [];
      if (restarts.length) process.stderr.write(`the test network crashed and was started again:\n${restarts.join("\n")}\n`);
      if (!(await zitiDown())) {
        const lines = existsSync(log) ? readFileSync(log, "utf8").split("\n") : ["(no log)"];
        // A Go crash prints its cause first, then every goroutine: the cause is what matters.
        const crash = lines.findIndex((l) => /^(fatal error|panic):/.test(l));
        const tail = (crash >= 0 ? lines.slice(Math.max(0, crash - 20), crash + 40) : lines.slice(-60)).join("\n");
        process.stderr.write(`the test network had stopped by itself; the end of its log:\n${tail}\n`);
      }
      rmSync(home, { recursive: true, force: true });
    },
  };
}
