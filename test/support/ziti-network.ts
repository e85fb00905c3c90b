import { mkdtempSync, rmSync } from "node:fs";
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
      await zitiDown();
      rmSync(home, { recursive: true, force: true });
    },
  };
}
