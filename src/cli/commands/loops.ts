import type { Command } from "commander";

// Filled in by the issue that owns this command group.
export function registerLoopCommands(_program: Command): void {}
