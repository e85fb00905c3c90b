import { Command, Option } from "commander";
import { join, resolve } from "node:path";
import { homeDir } from "../../config/paths.js";
import { ensureDialerBinary, ensureZitiBinary, ZITI_VERSION } from "../../ziti/binary.js";
import { createMachineIdentity, localManagementClient, revokeMachineIdentity, zitiDown, zitiStatus, zitiUp } from "../../ziti/network.js";
import { CliError, ExitCode } from "../exit-codes.js";
import { printJson, style } from "../output.js";

const progress = (line: string) => process.stderr.write(`${style.dim("==>")} ${line}\n`);

export function registerZitiCommands(program: Command): void {
  const ziti = program.command("ziti").description("The embedded OpenZiti network and identities");

  ziti
    .command("install")
    .description(`Build (once, cached) or locate ziti ${ZITI_VERSION} and the client's dialer; RALPH_ZITI_BIN and RALPH_ZITI_DIAL_BIN override`)
    .action(async () => {
      for (const ensure of [ensureZitiBinary, ensureDialerBinary]) process.stdout.write(`${await ensure({ onProgress: progress })}\n`);
    });

  ziti
    .command("up")
    .description("Start (or reuse) the local OpenZiti network on 127.0.0.1 and set up the local daemon and client")
    .option("--json", "print the result as JSON")
    .action(async (o: { json?: boolean }) => {
      const net = await zitiUp({ onProgress: progress });
      if (o.json) return printJson({ controller: net.controller.url, pid: net.pid, daemonConfig: net.daemonConfigFile, remote: "local" });
      process.stdout.write(`network up (pid ${net.pid}); daemon config ${net.daemonConfigFile}; client remote "local" registered\n`);
    });

  ziti
    .command("down")
    .description("Stop the local OpenZiti network (its state is kept)")
    .action(async () => {
      process.stdout.write((await zitiDown()) ? "network stopped\n" : "network was not running\n");
    });

  ziti
    .command("status")
    .description("Controller, router, identities and services of the local network")
    .option("--json", "print as JSON")
    .action(async (o: { json?: boolean }) => {
      const s = await zitiStatus();
      if (o.json) printJson(s);
      else if (!s.configured) process.stdout.write("no local network: run 'ralph ziti up'\n");
      else {
        process.stdout.write(`controller ${s.controller}: ${s.running ? style.green("running") : style.red("stopped")}${s.pid ? ` (pid ${s.pid})` : ""}\n`);
        if (s.error) process.stdout.write(`  ${style.red(s.error)}\n`);
        if (s.running) {
          process.stdout.write(`routers online: ${s.routersOnline}\n`);
          for (const i of s.identities ?? []) process.stdout.write(`identity ${i.name} ${style.dim(i.roles.join(","))}\n`);
          for (const name of s.services ?? []) process.stdout.write(`service ${name}\n`);
        }
      }
      if (!s.running) process.exitCode = ExitCode.Unavailable;
    });

  const identity = ziti.command("identity").description("Give other machines access, or take it away");
  identity
    .command("create")
    .description("Create and enrol an identity for another machine: a client that may dial every daemon, or the daemon NAME that may host only its own services")
    .argument("<name>", "identity name (for a daemon: the name in its config)")
    .addOption(new Option("--role <role>", "what it may do").choices(["client", "daemon"]).makeOptionMandatory())
    .option("--out <file>", "where to write the enrolled identity (mode 0600)")
    .action(async (name: string, o: { role: "client" | "daemon"; out?: string }) => {
      const out = resolve(o.out ?? join(homeDir("ziti", "identities"), `${name}.json`));
      const m = await localManagementClient();
      try {
        await createMachineIdentity(m, name, o.role, out);
      } finally {
        await m.close();
      }
      process.stdout.write(`${out}\n`);
      process.stderr.write(
        o.role === "client"
          ? `copy it to the other machine and run there: ralph remote add DAEMON --identity FILE\n`
          : `copy it to the daemon's machine; its config needs "name": "${name}" and "identityFile" pointing at it\n`,
      );
    });
  identity
    .command("revoke")
    .description("Delete an identity: its holder loses access at once")
    .argument("<name>", "identity name")
    .action(async (name: string) => {
      const m = await localManagementClient();
      try {
        if (!(await revokeMachineIdentity(m, name))) throw new CliError(`no identity named "${name}" ('ralph ziti status' lists them)`, ExitCode.NotFound);
      } finally {
        await m.close();
      }
      process.stdout.write(`revoked ${name}\n`);
    });
}
