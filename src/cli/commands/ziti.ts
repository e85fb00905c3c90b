import { Command, InvalidArgumentError, Option } from "commander";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { homeDir } from "../../config/paths.js";
import { DEFAULT_CTRL_PORT, DEFAULT_ROUTER_PORT, LOCAL_NAME, ZITI_VERSION } from "../../ziti/defaults.js";
import { ExitCode } from "../exit-codes.js";
import { InvalidInputError, NotFoundError } from "../../util/errors.js";
import { printJson, style } from "../output.js";

/** "30m", "3h", "2d" as milliseconds, at most 30 days. */
export function parseDuration(v: string): number {
  const m = /^(\d+)([mhd])$/.exec(v.trim());
  const ms = m ? Number(m[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "m" | "h" | "d"] : NaN;
  if (!(ms > 0) || ms > 30 * 86_400_000) throw new InvalidArgumentError("give a duration such as 30m, 3h or 2d, at most 30d");
  return ms;
}

function parsePort(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError("give a TCP port, 1-65535");
  return n;
}

// Loaded when a command runs: --help must not pay for them.
const binaries = () => import("../../ziti/binary.js");
const network = () => import("../../ziti/network.js");

const progress = (line: string) => process.stderr.write(`${style.dim("==>")} ${line}\n`);

export function registerZitiCommands(program: Command): void {
  const ziti = program.command("ziti").description("The embedded OpenZiti network and identities");

  ziti
    .command("install")
    .description(`Build (once, cached) or locate ziti ${ZITI_VERSION} the client's dialer and the daemon's host; RALPH_ZITI_BIN, RALPH_ZITI_DIAL_BIN and RALPH_ZITI_HOST_BIN override`)
    .action(async () => {
      const { ensureZitiBinary, ensureDialerBinary, ensureHostBinary } = await binaries();
      for (const ensure of [ensureZitiBinary, ensureDialerBinary, ensureHostBinary]) process.stdout.write(`${await ensure({ onProgress: progress })}\n`);
    });

  ziti
    .command("up")
    .description(
      "Start (or reuse) this machine's OpenZiti network (controller + router), provision the local daemon's services, and set up the local daemon (its identity only, no admin credential) and client. " +
        "The controller and router listen on the advertised address only; its two ports are the only ones any machine of the network opens",
    )
    .option("--advertise <host>", `DNS name or IP other machines reach this network at; baked into its certificates, so choose a stable one (new network: default 127.0.0.1, this machine only)`)
    .option("--ctrl-port <n>", `controller port (new network: default ${DEFAULT_CTRL_PORT})`, parsePort)
    .option("--router-port <n>", `router port (new network: default ${DEFAULT_ROUTER_PORT})`, parsePort)
    .option("--listen <address>", "local address to listen on when the advertised name does not resolve to one of this host's (behind NAT); default: the advertised IP, or what its name resolves to")
    .option("--recreate", "destroy the existing network (every identity, service and enrolment: every machine must join again) and create it anew with these settings")
    .option("--json", "print the result as JSON")
    .action(async (o: { json?: boolean; advertise?: string; ctrlPort?: number; routerPort?: number; listen?: string; recreate?: boolean }) => {
      if (o.advertise !== undefined && !/^[A-Za-z0-9.-]+$/.test(o.advertise)) throw new InvalidInputError(`--advertise ${o.advertise}: give a DNS name or an IPv4 address`);
      const { zitiUp } = await network();
      const net = await zitiUp({ onProgress: progress, advertise: o.advertise, ctrlPort: o.ctrlPort, routerPort: o.routerPort, listen: o.listen, recreate: o.recreate });
      if (o.json) return printJson({ controller: net.controller.url, pid: net.pid, daemonConfig: net.daemonConfigFile, remote: "local" });
      process.stdout.write(`network up (pid ${net.pid}); daemon config ${net.daemonConfigFile}; client remote "local" registered\n`);
    });

  ziti
    .command("down")
    .description("Stop the local OpenZiti network (its state is kept)")
    .action(async () => {
      const { zitiDown } = await network();
      process.stdout.write((await zitiDown()) ? "network stopped\n" : "network was not running\n");
    });

  ziti
    .command("status")
    .description("The local network: its advertised address and ports, routers, every identity (role, enrolled or not, online) and services")
    .option("--json", "print as JSON")
    .action(async (o: { json?: boolean }) => {
      const s = await (await network()).zitiStatus();
      if (o.json) printJson(s);
      else if (!s.configured) process.stdout.write("no local network: run 'ralph ziti up'\n");
      else {
        process.stdout.write(`controller ${s.controller}: ${s.running ? style.green("running") : style.red("stopped")}${s.pid ? ` (pid ${s.pid})` : ""}\n`);
        if (s.loggedIn) process.stdout.write(`a controller of your own ('ralph ziti login'; 'ralph ziti logout' returns to this machine's network)\n`);
        else process.stdout.write(`advertised as ${s.advertise}: controller port ${s.ctrlPort}, router port ${s.routerPort} (listening on ${s.listen}; open these two ports to the daemon and client machines)\n`);
        if (s.error) process.stdout.write(`  ${style.red(s.error)}\n`);
        if (s.running) {
          process.stdout.write(`routers online: ${s.routersOnline}\n`);
          for (const i of s.identities ?? []) {
            const state = i.enrolled ? (i.online ? style.green("enrolled, online") : "enrolled") : style.yellow(`not enrolled${i.tokenExpiresAt ? ` (token valid until ${i.tokenExpiresAt})` : ""}`);
            process.stdout.write(`identity ${i.name}\t${i.role}\t${state}\n`);
          }
          for (const name of s.services ?? []) process.stdout.write(`service ${name}\n`);
        }
      }
      if (!s.running) process.exitCode = ExitCode.Unavailable;
    });

  ziti
    .command("login")
    .description(
      "Administer a controller that 'ralph ziti up' did not create: identity create/revoke and status then act on it, and provision Ralph's services and policies there. " +
        "The credentials are copied to RALPH_HOME/ziti/login (0600) on this machine only",
    )
    .argument("<url>", "the controller, https://HOST:PORT")
    .requiredOption("--ca <file>", "the PEM CA that signs the controller's certificate, copied from the controller's machine (never trusted on first use)")
    .option("--username <name>", "admin user name (with --password-file)")
    .option("--password-file <file>", "file holding the admin password (never on the command line)")
    .option("--cert <file>", "admin certificate (with --key)")
    .option("--key <file>", "admin private key")
    .option("--json", "print the result as JSON")
    .action(async (url: string, o: { ca: string; username?: string; passwordFile?: string; cert?: string; key?: string; json?: boolean }) => {
      const { login } = await import("../../ziti/login.js");
      const r = await login({ url, caFile: o.ca, username: o.username, passwordFile: o.passwordFile, certFile: o.cert, keyFile: o.key });
      if (o.json) return printJson(r);
      process.stdout.write(`logged in to ${r.controller} (${r.identities} identities); 'ralph ziti identity create' and 'status' act on it now\n`);
    });
  ziti
    .command("logout")
    .description("Forget the controller of 'ralph ziti login' and its credentials on this machine")
    .action(async () => {
      const { logout } = await import("../../ziti/login.js");
      process.stdout.write(logout() ? "logged out\n" : "was not logged in\n");
    });

  const identity = ziti.command("identity").description("Give other machines access, or take it away");
  identity
    .command("create")
    .description(
      "Create an identity for another machine and write its one-time enrolment token: a client that may dial every daemon, or the daemon NAME, whose two services and Bind policy are provisioned here (it may host only those, and needs no admin credential). The other machine enrols with the token and makes its own key pair",
    )
    .argument("<name>", "identity name (for a daemon: the name in its config)")
    .addOption(new Option("--role <role>", "what it may do").choices(["client", "daemon"]).makeOptionMandatory())
    .option("--out <file>", "where to write the token (mode 0600; default RALPH_HOME/ziti/tokens/NAME.jwt)")
    .option("--print", "print the token on standard output instead of writing a file")
    .option("--expires <duration>", "how long the token may be used, e.g. 30m, 3h, 2d (at most 30d)", parseDuration, 3 * 3600_000)
    .option("--json", "print the result as JSON")
    .action(async (name: string, o: { role: "client" | "daemon"; out?: string; print?: boolean; expires: number; json?: boolean }) => {
      if (o.print && o.out) throw new InvalidInputError("--print and --out exclude each other");
      const out = o.print ? undefined : resolve(o.out ?? join(homeDir("ziti", "tokens"), `${name}.jwt`));
      if (out && existsSync(out)) throw new InvalidInputError(`${out} already exists: choose another --out, or remove it first`);
      const { adminManagementClient, createMachineIdentity } = await network();
      const m = await adminManagementClient();
      let token: { jwt: string; expiresAt: string };
      try {
        token = await createMachineIdentity(m, name, o.role, new Date(Date.now() + o.expires));
      } finally {
        await m.close();
      }
      if (out) writeFileSync(out, token.jwt + "\n", { mode: 0o600 });
      const where = out ?? "TOKEN_FILE";
      const next = o.role === "client" ? `ralph remote add DAEMON --token ${where}   (DAEMON: the daemon's name, e.g. ${LOCAL_NAME})` : `ralphd join --token ${where}`;
      if (o.json) return printJson({ name, role: o.role, expiresAt: token.expiresAt, ...(out ? { tokenFile: out } : { token: token.jwt }), next });
      if (o.print) process.stdout.write(`${token.jwt}\n`);
      else process.stdout.write(`${out}\n`);
      process.stderr.write(`one-time token for ${name}, valid until ${token.expiresAt}; move it to the other machine (it is a secret until used) and run there:\n  ${next}\n`);
    });
  ziti
    .command("enroll")
    .description("Enrol this machine with a one-time token: the key pair is made here and never leaves it")
    .requiredOption("--token <file>", "the token file, or - for standard input")
    .requiredOption("--out <file>", "where to write the enrolled identity (mode 0600)")
    .action(async (o: { token: string; out: string }) => {
      const out = resolve(o.out);
      const { enrollIdentity } = await import("../../ziti/enroll.js");
      await enrollIdentity(readFileSync(o.token === "-" ? 0 : o.token, "utf8"), out, o.token === "-" ? "standard input" : o.token);
      process.stdout.write(`${out}\n`);
    });
  identity
    .command("revoke")
    .description("Delete an identity: its holder loses access at once; a daemon's services and Bind policy go with it")
    .argument("<name>", "identity name")
    .action(async (name: string) => {
      const { adminManagementClient, revokeMachineIdentity } = await network();
      const m = await adminManagementClient();
      try {
        if (!(await revokeMachineIdentity(m, name))) throw new NotFoundError(`no identity named "${name}" ('ralph ziti status' lists them)`);
      } finally {
        await m.close();
      }
      process.stdout.write(`revoked ${name}\n`);
    });
}
