import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import { z } from "zod";
import { homeDir, ralphHome } from "../config/paths.js";
import { InvalidInputError } from "../util/errors.js";
import { DEFAULT_CTRL_PORT, DEFAULT_ROUTER_PORT, LOCAL_NAME } from "./defaults.js";
import { DaemonConfigSchema, defaultDaemonConfigPath, type ControllerConfig } from "../daemon/config.js";
import { Roles } from "./roles.js";
import { provisionDaemonServices, removeDaemonServices } from "./provision.js";
import { stopAgent } from "../client/agent/client.js";
import { upsertRemote } from "../client/remotes.js";
import { SupervisedProcess, pidAlive, releaseFromParentExit, signalGroup } from "../process/supervisor.js";
import { waitFor } from "../util/wait.js";
import { portFree } from "../util/ports.js";
import { ensureZitiBinary } from "./binary.js";
import { enrollIdentity } from "./enroll.js";
import { ManagementClient, type Entity } from "./mgmt.js";
import { identityIdOf } from "./identity-file.js";
import { loginManagementClient, savedLogin } from "./login.js";
import { controlServiceName } from "./roles.js";

const LOOPBACK = "127.0.0.1";
const NetworkStateSchema = z.object({
  // Networks made before --advertise existed were always on 127.0.0.1.
  advertise: z.string().default(LOOPBACK),
  /** The interface address the controller and router listen on (the advertised IP, or what its name resolves to here). */
  listen: z.string().default(LOOPBACK),
  ctrlPort: z.number().int(),
  routerPort: z.number().int(),
  username: z.string(),
  pid: z.number().int().optional(),
});
type NetworkState = z.infer<typeof NetworkStateSchema>;

/** Where and how the network is reached; fixed once it exists. */
export interface NetworkAddress {
  /** DNS name or IP that the certificates and every enrolment carry. */
  advertise: string;
  ctrlPort: number;
  routerPort: number;
}

export { DEFAULT_CTRL_PORT, DEFAULT_ROUTER_PORT, LOCAL_NAME };
export const localIdentityName = (role: "daemon" | "client") => `ralph-${role}-${LOCAL_NAME}`;

const dir = () => homeDir("ziti");
const paths = () => ({
  state: join(dir(), "network.json"),
  password: join(dir(), "admin-password"),
  home: join(dir(), "quickstart"),
  configDir: homeDir("ziti", "cli-config"),
  log: join(dir(), "quickstart.log"),
  identity: (name: string) => join(homeDir("ziti", "identities"), `${name}.json`),
});

export interface LocalNetwork {
  controller: ControllerConfig;
  pid: number;
  daemonIdentityFile: string;
  clientIdentityFile: string;
  daemonConfigFile: string;
}

function writePrivate(file: string, content: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode: 0o600 });
  renameSync(tmp, file);
}

function readState(): NetworkState | undefined {
  const p = paths().state;
  return existsSync(p) ? NetworkStateSchema.parse(JSON.parse(readFileSync(p, "utf8"))) : undefined;
}
const saveState = (s: NetworkState) => writePrivate(paths().state, JSON.stringify(s, null, 2) + "\n");

export function localController(state: NetworkState): ControllerConfig {
  const p = paths();
  return {
    url: `https://${state.advertise}:${state.ctrlPort}`,
    caFile: join(p.home, "pki", "root-ca", "certs", "root-ca.cert"),
    auth: { method: "password", username: state.username, passwordFile: p.password },
  };
}

async function controllerReady(state: NetworkState): Promise<boolean> {
  const m = await ManagementClient.connect(localController(state));
  try {
    return (await m.routersOnline()) > 0;
  } finally {
    await m.close();
  }
}

/**
 * The quickstart's router listens on every interface whatever it is told, so
 * the listeners of both configs are rewritten to the one listen address
 * before every lasting start. Advertised addresses are left alone.
 */
function bindListeners(home: string, listen: string): void {
  const rewrite = (f: string, keys: RegExp) => {
    const file = join(home, f);
    if (existsSync(file)) writeFileSync(file, readFileSync(file, "utf8").replace(keys, `$1${listen}$2`));
  };
  // ctrl.yaml: the fabric listener and the web bind point ("interface").
  rewrite("ctrl.yaml", /^(\s*(?:-\s*)?(?:listener|interface):\s*(?:tls:)?)[^:\s]+(:\d+)/gm);
  // router: the link listener's bind and the edge listener's address.
  rewrite("router-quickstart.yaml", /^(\s*(?:-\s*)?(?:bind|address):\s*tls:)[^:\s]+(:\d+)/gm);
}

/**
 * The address to listen on for `advertise`: itself when it is an IP, else
 * what the name resolves to on this host, which must be one of its own
 * interfaces (a name that resolves elsewhere, as behind a cloud's 1:1 NAT,
 * needs --listen).
 */
export async function listenAddressFor(advertise: string): Promise<string> {
  if (isIP(advertise)) return advertise;
  let address: string;
  try {
    address = (await lookup(advertise, { family: 4 })).address;
  } catch (err) {
    throw new InvalidNetworkAddress(`cannot resolve ${advertise} on this host (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): fix its DNS record, or give --listen ADDRESS (an address of this host)`);
  }
  const own = Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((i) => i.address));
  if (!own.includes(address)) {
    throw new InvalidNetworkAddress(`${advertise} resolves to ${address}, which is not an address of this host (behind NAT?): give --listen ADDRESS, the local address the forwarded ports arrive at`);
  }
  return address;
}

/** A requested advertised address or port that this network cannot take. */
export class InvalidNetworkAddress extends InvalidInputError {
  constructor(message: string) {
    super(message);
    this.name = "InvalidNetworkAddress";
  }
}

/** How far the controller's store is extended before a start; see reserveStoreMapping. */
const STORE_RESERVE_BYTES = 512 * 2 ** 20;

/**
 * ziti 1.7.2's controller keeps terminators in a cache whose peer data (the
 * hosting side's key) points into its bbolt store's memory map. When the
 * store outgrows the map, bbolt maps it anew and those pointers dangle: the
 * next circuit to such a terminator crashes the controller with SIGSEGV
 * (controller/db/terminator_store.go keeps cursor values past their
 * transaction). bbolt maps at least the file's size, so the file is extended
 * (sparse: no disk is used) far beyond what the store needs before each start,
 * and the map never has to move.
 */
function reserveStoreMapping(home: string): void {
  const db = join(home, "db", "ctrl.db");
  if (existsSync(db) && statSync(db).size < STORE_RESERVE_BYTES) truncateSync(db, STORE_RESERVE_BYTES);
}

/**
 * The quickstart writes its PKI keys 0644, guarded only by their directories;
 * they are made 0600 whenever the network is brought up, in case ziti wrote
 * them anew.
 */
function protectKeys(home: string): void {
  for (const f of readdirSync(home, { recursive: true, encoding: "utf8" })) if (f.endsWith(".key")) chmodSync(join(home, f), 0o600);
}

/**
 * The network is a background service that every daemon and client relies
 * on, so a crash must not end it: ziti 1.7.2 was seen to die of a SIGSEGV
 * while creating a circuit, after many loops. This shell runs it and starts
 * it again after a crash, waiting longer after each quick one; a TERM to the
 * process group (ralph ziti down) stops both.
 */
const RESTART_LOOP = `
trap 'stopping=1' TERM INT
delay=1
while :; do
  started=$(date +%s)
  "$@" & child=$!
  wait "$child"; code=$?
  if [ -n "$stopping" ]; then wait "$child"; exit 0; fi
  if [ $(( $(date +%s) - started )) -gt 60 ]; then delay=1; fi
  echo "ralph: the OpenZiti network exited with status $code; starting it again in $delay s"
  sleep "$delay"
  if [ -n "$stopping" ]; then exit 0; fi
  delay=$(( delay * 2 > 30 ? 30 : delay * 2 ))
done`;

async function startQuickstart(state: NetworkState, progress: (s: string) => void): Promise<number> {
  const ziti = await ensureZitiBinary({ onProgress: progress });
  const p = paths();
  const firstStart = !existsSync(join(p.home, "ctrl.yaml"));
  const launch = async (bootstrapPassword?: string) => {
    const proc = await SupervisedProcess.spawn({
      name: "ziti quickstart",
      command: "/bin/sh",
      args: [
        "-c", RESTART_LOOP, "ralph-ziti-network", ziti,
        "edge", "quickstart", "--home", p.home,
        "--ctrl-address", state.advertise, "--ctrl-port", String(state.ctrlPort),
        "--router-address", state.advertise, "--router-port", String(state.routerPort),
        "--username", state.username,
        // Only read when the network is created; later starts carry no secret.
        ...(bootstrapPassword ? ["--password", bootstrapPassword] : []),
      ],
      // The controller is created listening on the listen address; the
      // router's template has no such setting, hence bindListeners before the
      // lasting start. An IP given as --*-address lands in the certificates
      // as a DNS name (1.7.2), so an IP goes in through the IP overrides.
      env: {
        ...process.env,
        ZITI_CONFIG_DIR: p.configDir,
        ZITI_CTRL_BIND_ADDRESS: state.listen,
        ZITI_CTRL_EDGE_BIND_ADDRESS: state.listen,
        ...(isIP(state.advertise) ? { ZITI_CTRL_EDGE_IP_OVERRIDE: state.advertise, ZITI_ROUTER_IP_OVERRIDE: state.advertise } : {}),
      },
      logFile: p.log,
      outputToFileOnly: true,
    });
    // The network is a background service: it outlives `ralph ziti up`.
    releaseFromParentExit(proc);
    const died = new AbortController();
    void proc.exited.then(() => died.abort(new Error(`the quickstart network exited during start-up: ${proc.describeExit()}`)));
    await waitFor(() => controllerReady(state), { what: "the Ziti controller and router to come online", timeoutMs: 120_000, intervalMs: 500, signal: died.signal });
    return proc;
  };
  progress(firstStart ? `starting a new OpenZiti network (controller + router) advertised as ${state.advertise}` : "starting the OpenZiti network");
  if (!firstStart) {
    bindListeners(p.home, state.listen);
    reserveStoreMapping(p.home);
    return (await launch()).pid;
  }

  // A command line is visible to every user of the machine, so the network is
  // created with a throwaway password that is replaced through the API at once.
  const bootstrap = randomBytes(24).toString("base64url");
  const admin = randomBytes(24).toString("base64url");
  writePrivate(p.password, bootstrap + "\n");
  let proc = await launch(bootstrap);
  const m = await ManagementClient.connect(localController(state));
  try {
    await m.changeOwnPassword(bootstrap, admin);
  } finally {
    await m.close();
  }
  writePrivate(p.password, admin + "\n");
  await proc.stop(10_000);
  bindListeners(p.home, state.listen);
  reserveStoreMapping(p.home);
  proc = await launch();
  return proc.pid;
}

async function ensureIdentity(m: ManagementClient, name: string, role: "daemon" | "client"): Promise<string> {
  const file = paths().identity(name);
  if (existsSync(file) && (await m.getIdentity(name))) return file;
  await m.deleteIdentity(name);
  rmSync(file, { force: true });
  await enrollIdentity((await m.createIdentity(name, role)).jwt, file);
  return file;
}

/**
 * Creates an identity for another machine and returns its one-time
 * enrolment token: the other machine makes its own key pair when it enrols,
 * so no private key travels. A client may dial Ralph's services; for the
 * daemon `name`, its two services and the Bind policy that lets exactly this
 * identity host them are provisioned here, so that daemon needs no admin
 * credential. A failure leaves no identity behind.
 */
export async function createMachineIdentity(m: ManagementClient, name: string, role: "daemon" | "client", expiresAt?: Date): Promise<{ jwt: string; expiresAt: string }> {
  // Idempotent: on a controller of one's own these may not exist yet.
  await m.ensureDialPolicy();
  await m.ensureRouterPolicies();
  const { id, jwt, expiresAt: expires } = await m.createIdentity(name, role, expiresAt);
  if (role === "daemon") {
    try {
      await provisionDaemonServices(m, name, id);
    } catch (err) {
      await m.request("DELETE", `/identities/${id}`).catch(() => undefined);
      throw err;
    }
  }
  return { jwt, expiresAt: expires };
}

/** Deletes an identity and, for a daemon, its services and Bind policy; false when there is none. */
export async function revokeMachineIdentity(m: ManagementClient, name: string): Promise<boolean> {
  const identity = await m.getIdentity(name);
  if (!identity) return false;
  await m.request("DELETE", `/identities/${identity.id}`);
  if (identity.roleAttributes?.includes(Roles.daemon)) await removeDaemonServices(m, name);
  return true;
}

/**
 * Writes the local daemon's config when there is none, and takes the keys of
 * earlier releases (the admin controller section, hostTunneler) out of one
 * that has them: nothing under the daemon's config may name an admin secret.
 */
function writeLocalDaemonConfig(file: string, identityFile: string): void {
  if (!existsSync(file)) {
    homeDir("daemon");
    const config = DaemonConfigSchema.parse({ name: LOCAL_NAME, identityFile, workspaceDir: join(ralphHome(), "daemon", "workspace") });
    writePrivate(file, JSON.stringify(config, null, 2) + "\n");
    return;
  }
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch {
    return; // ralphd names what is wrong with it
  }
  if (typeof json !== "object" || json === null || !("controller" in json || "hostTunneler" in json)) return;
  const { controller: _c, hostTunneler: _h, ...rest } = json as Record<string, unknown>;
  writePrivate(file, JSON.stringify(rest, null, 2) + "\n");
}

export interface ZitiUpOptions {
  onProgress?: (line: string) => void;
  /** Defaults, for a new network: 127.0.0.1, 1280, 3022. An existing network keeps its own. */
  advertise?: string;
  ctrlPort?: number;
  routerPort?: number;
  /** Interface address to listen on, when the advertised name resolves to none of this host's (NAT). */
  listen?: string;
  /** Destroy the existing network (every identity, service and enrolment) and make a new one. */
  recreate?: boolean;
}

/**
 * The advertised address and ports are in the certificates and in every
 * enrolled identity, so an existing network cannot move: the way out is a new
 * network, which every machine must join again.
 */
function refuseMove(state: NetworkState, want: Partial<NetworkAddress>): void {
  const changes = (["advertise", "ctrlPort", "routerPort"] as const).filter((k) => want[k] !== undefined && want[k] !== state[k]).map((k) => `${k} ${state[k]} -> ${want[k]}`);
  if (!changes.length) return;
  throw new InvalidNetworkAddress(
    `this network exists with ${changes.join(", ")}: an advertised address and its ports are baked into the network's certificates and into every identity enrolled with it, so they cannot change. ` +
      `Either keep them (run 'ralph ziti up' without these options), make a separate network under another RALPH_HOME, ` +
      `or add --recreate, which DESTROYS this network: every identity, service and enrolment (every daemon and laptop must join again with new tokens)`,
  );
}

/** Removes the embedded network and everything enrolled with it, for --recreate. */
async function destroyNetwork(progress: (s: string) => void): Promise<void> {
  await zitiDown();
  const p = paths();
  progress(`destroying the network under ${dir()}: its PKI, every identity, service and enrolment`);
  for (const f of [p.home, p.state, p.password, p.configDir, homeDir("ziti", "identities"), homeDir("ziti", "tokens")]) rmSync(f, { recursive: true, force: true });
}

/** Starts (or reuses) the embedded network and makes the local daemon and client ready to use. */
export async function zitiUp(opts: ZitiUpOptions = {}): Promise<LocalNetwork> {
  const progress = opts.onProgress ?? (() => undefined);
  let state = readState();
  if (state && opts.recreate) {
    await destroyNetwork(progress);
    state = undefined;
  }
  if (state) refuseMove(state, opts);
  if (!state) {
    const advertise = opts.advertise ?? LOOPBACK;
    state = {
      advertise,
      listen: opts.listen ?? (await listenAddressFor(advertise)),
      ctrlPort: opts.ctrlPort ?? DEFAULT_CTRL_PORT,
      routerPort: opts.routerPort ?? DEFAULT_ROUTER_PORT,
      username: "admin",
    };
    saveState(state);
  } else if (opts.listen !== undefined && opts.listen !== state.listen) {
    // Not in any certificate: the listen address may move (a new NAT target).
    state.listen = opts.listen;
    saveState(state);
  }
  const running = state.pid !== undefined && pidAlive(state.pid) && (await controllerReady(state).catch(() => false));
  if (running) progress(`the OpenZiti network is already running (pid ${state.pid})`);
  else {
    // A taken port would only show as a quickstart that dies during start-up.
    for (const [what, port] of [["controller", state.ctrlPort], ["router", state.routerPort]] as const) {
      if (!(await portFree(state.listen, port))) {
        throw new InvalidNetworkAddress(
          `the ${what} port ${state.listen}:${port} is in use by another program (another network under another RALPH_HOME?): stop it, or create this network with another --${what === "controller" ? "ctrl" : "router"}-port`,
        );
      }
    }
    state.pid = await startQuickstart(state, progress);
    saveState(state);
  }
  protectKeys(paths().home);
  const controller = localController(state);
  const m = await ManagementClient.connect(controller);
  try {
    await m.ensureDialPolicy();
    const daemonIdentityFile = await ensureIdentity(m, localIdentityName("daemon"), "daemon");
    // The admin side provisions what the local daemon hosts; ralphd itself holds only its identity.
    await provisionDaemonServices(m, LOCAL_NAME, identityIdOf(daemonIdentityFile));
    const clientIdentityFile = await ensureIdentity(m, localIdentityName("client"), "client");
    const daemonConfigFile = defaultDaemonConfigPath();
    writeLocalDaemonConfig(daemonConfigFile, daemonIdentityFile);
    upsertRemote(LOCAL_NAME, { identityFile: clientIdentityFile, service: controlServiceName(LOCAL_NAME) });
    progress(`the OpenZiti network is up: controller ${controller.url}`);
    return { controller, pid: state.pid!, daemonIdentityFile, clientIdentityFile, daemonConfigFile };
  } finally {
    await m.close();
  }
}

/** Stops the embedded network; its state is kept for the next `up`. */
export async function zitiDown(): Promise<boolean> {
  // The client agent's dialers would only keep retrying a network that is gone.
  await stopAgent();
  const state = readState();
  if (!state?.pid || !pidAlive(state.pid)) return false;
  signalGroup(state.pid, "SIGTERM");
  try {
    await waitFor(() => !pidAlive(state.pid!), { what: "the network to stop", timeoutMs: 15_000 });
  } catch {
    signalGroup(state.pid, "SIGKILL");
  }
  delete state.pid;
  saveState(state);
  return true;
}

/** One identity as the management API shows it: what it may do and whether its token was used. */
export interface IdentityStatus {
  name: string;
  roles: string[];
  role: "daemon" | "client" | "admin" | "router" | "other";
  /** Its one-time token was used (it has a certificate or password authenticator). */
  enrolled: boolean;
  /** When a pending token expires (not enrolled yet). */
  tokenExpiresAt?: string;
  /** Logged in now. */
  online: boolean;
}

interface IdentityDetail extends Entity {
  isAdmin?: boolean;
  hasApiSession?: boolean;
  type?: { name?: string };
  authenticators?: Record<string, unknown> | null;
  enrollment?: { ott?: { expiresAt?: string } } | null;
}

function identityStatus(i: IdentityDetail): IdentityStatus {
  const roles = i.roleAttributes ?? [];
  const role = i.type?.name === "Router" ? "router" : i.isAdmin ? "admin" : roles.includes(Roles.daemon) ? "daemon" : roles.includes(Roles.client) ? "client" : "other";
  const tokenExpiresAt = i.enrollment?.ott?.expiresAt;
  return { name: i.name, roles, role, enrolled: Object.keys(i.authenticators ?? {}).length > 0, ...(tokenExpiresAt ? { tokenExpiresAt } : {}), online: i.hasApiSession === true };
}

export interface NetworkStatus {
  configured: boolean;
  /** Acting on a controller of one's own (`ralph ziti login`), not the embedded network. */
  loggedIn?: boolean;
  advertise?: string;
  listen?: string;
  ctrlPort?: number;
  routerPort?: number;
  running: boolean;
  pid?: number;
  controller?: string;
  routersOnline?: number;
  identities?: IdentityStatus[];
  services?: string[];
  error?: string;
}

export async function zitiStatus(): Promise<NetworkStatus> {
  const login = savedLogin();
  const state = readState();
  let controller: ControllerConfig;
  let base: Omit<NetworkStatus, "running">;
  if (login) {
    // A controller of one's own: its address is whatever its URL says.
    controller = login;
    const url = new URL(login.url);
    base = { configured: true, controller: login.url, advertise: url.hostname, ctrlPort: Number(url.port || 443), loggedIn: true };
  } else {
    if (!state) return { configured: false, running: false };
    controller = localController(state);
    base = { configured: true, controller: controller.url, advertise: state.advertise, listen: state.listen, ctrlPort: state.ctrlPort, routerPort: state.routerPort };
    if (!state.pid || !pidAlive(state.pid)) return { ...base, running: false };
  }
  try {
    const m = await ManagementClient.connect(controller);
    try {
      const identities = (await m.request<IdentityDetail[]>("GET", "/identities?limit=500")).map(identityStatus);
      const services = (await m.listNames("services")).map((s) => s.name);
      return { ...base, running: true, pid: login ? undefined : state?.pid, routersOnline: await m.routersOnline(), identities, services };
    } finally {
      await m.close();
    }
  } catch (err) {
    return { ...base, running: false, pid: login ? undefined : state?.pid, error: (err as Error).message };
  }
}

/** A ManagementClient for the embedded network (admin), for identity commands and tests. */
export async function localManagementClient(): Promise<ManagementClient> {
  const state = readState();
  if (!state) throw new Error("no local OpenZiti network: run 'ralph ziti up' first, or 'ralph ziti login URL ...' for a controller of your own");
  return ManagementClient.connect(localController(state));
}

/** The controller the admin commands act on: the one of `ralph ziti login`, else the embedded network. */
export async function adminManagementClient(): Promise<ManagementClient> {
  return (await loginManagementClient()) ?? localManagementClient();
}
