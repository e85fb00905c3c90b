import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { zitiDown, zitiUp, type LocalNetwork } from "../../src/ziti/network.js";

/** A real quickstart network in a private RALPH_HOME, torn down afterwards. */
export async function startTestNetwork(prefix: string): Promise<{ home: string; net: LocalNetwork; stop(): Promise<void> }> {
  const home = mkdtempSync(join(tmpdir(), `${prefix}-`));
  process.env.RALPH_HOME = home;
  const net = await zitiUp();
  return {
    home,
    net,
    stop: async () => {
      process.env.RALPH_HOME = home;
      // A network that died under a test says why, before its home is gone.
      if (!(await zitiDown())) {
        const log = join(home, "ziti", "quickstart.log");
        const tail = existsSync(log) ? readFileSync(log, "utf8").split("\n").slice(-60).join("\n") : "(no log)";
        process.stderr.write(`the test network had stopped by itself; the end of its log:\n${tail}\n`);
      }
      rmSync(home, { recursive: true, force: true });
    },
  };
}
