import type { Command } from "commander";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { readRemotes, upsertRemote, writeRemotes } from "../../client/remotes.js";
import { controlServiceName } from "../../ziti/roles.js";
import { CliError, ExitCode } from "../exit-codes.js";
import { printJson } from "../output.js";

export function registerRemoteCommands(program: Command): void {
  const remote = program.command("remote").description("Daemons this machine can reach over OpenZiti");
  remote
    .command("add")
    .description("Register a remote daemon")
    .argument("<name>", "a name for it")
    .requiredOption("--identity <file>", "this machine's enrolled client identity")
    .option("--service <service>", "the daemon's control service (default: ralph-control-NAME)")
    .action((name: string, o: { identity: string; service?: string }) => {
      const identityFile = resolve(o.identity);
      if (!existsSync(identityFile)) throw new CliError(`no identity file at ${identityFile}: create one with 'ralph ziti identity create NAME --role client' on the network's host`, ExitCode.InvalidInput);
      upsertRemote(name, { identityFile, service: o.service ?? controlServiceName(name) });
      process.stdout.write(`remote ${name} added\n`);
    });
  remote
    .command("ls")
    .description("List remotes")
    .option("--json", "print as JSON")
    .action((o: { json?: boolean }) => {
      const { remotes } = readRemotes();
      if (o.json) return printJson(Object.entries(remotes).map(([name, r]) => ({ name, ...r })));
      for (const [name, r] of Object.entries(remotes)) process.stdout.write(`${name}\t${r.service}\t${r.identityFile}\n`);
    });
  remote
    .command("rm")
    .description("Forget a remote")
    .argument("<name>")
    .action((name: string) => {
      const file = readRemotes();
      if (!file.remotes[name]) throw new CliError(`no remote named "${name}"`, ExitCode.NotFound);
      delete file.remotes[name];
      writeRemotes(file);
      process.stdout.write(`remote ${name} removed\n`);
    });
}
