import type { Command } from "commander";

const actions = () => import("../actions/remote.js");

export function registerRemoteCommands(program: Command): void {
  const remote = program.command("remote").description("Daemons this machine can reach over OpenZiti");
  remote
    .command("add")
    .description("Register a remote daemon: enrol this machine with a one-time token (--token), or use an identity enrolled before (--identity)")
    .argument("<name>", "a name for it")
    .option("--token <file>", "one-time enrolment token from 'ralph ziti identity create NAME --role client' ('-' for standard input)")
    .option("--identity <file>", "this machine's enrolled client identity")
    .option("--service <service>", "the daemon's control service (default: ralph-control-NAME)")
    .action(async (name: string, o: { token?: string; identity?: string; service?: string }) => (await actions()).add(name, o));
  remote
    .command("ls")
    .description("List remotes")
    .option("--json", "print as JSON")
    .action(async (o: { json?: boolean }) => (await actions()).ls(o));
  remote
    .command("rm")
    .description("Forget a remote")
    .argument("<name>")
    .action(async (name: string) => (await actions()).rm(name));
}
