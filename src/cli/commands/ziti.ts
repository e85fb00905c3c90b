import type { Command } from "commander";

// Filled in by the issue that owns this command group.
export function registerZitiCommands(_program: Command): void {}
