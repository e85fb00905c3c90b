import type { Command } from "commander";
import type { DemoFlags } from "../actions/demo.js";

export function registerDemoCommand(program: Command): void {
  program
    .command("demo")
    .description(
      "The main job on this machine: an OpenZiti network on 127.0.0.1, a local ralphd, and an example Ralph loop started, followed and finished through the overlay",
    )
    .option("--model <provider/model>", "your model (default: $RALPH_MODEL, else the scripted offline demo model)")
    .option("--keep-network", "leave the OpenZiti network running afterwards")
    .option("--keep-daemon", "leave ralphd running afterwards")
    .option("--json", "print the loop's events and the result as JSON lines")
    .action(async (o: DemoFlags) => (await import("../actions/demo.js")).demo(o));
}
