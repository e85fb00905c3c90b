import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { InvalidInputError, UnavailableError, rephrased } from "../util/errors.js";
import { ralphHome } from "../config/paths.js";
import { enrollIdentity } from "../ziti/enroll.js";
import { identityView } from "../ziti/reach.js";
import { controlServiceName } from "../ziti/roles.js";
import { readEnrolmentToken } from "../ziti/token.js";
import { DaemonConfigSchema, defaultDaemonConfigPath, type DaemonConfig } from "./config.js";

export interface JoinResult {
  name: string;
  configFile: string;
  identityFile: string;
  controller: string;
}

/** The daemon name whose control service this identity may bind: what the admin named it. */
function daemonNameOf(bindable: string[], identityName: string): string {
  const prefix = controlServiceName("");
  const names = bindable.filter((s) => s.startsWith(prefix)).map((s) => s.slice(prefix.length));
  if (names.length === 1) return names[0]!;
  if (names.includes(identityName)) return identityName;
  throw new InvalidInputError(
    names.length === 0
      ? `identity "${identityName}" may host no Ralph control service: was it created with 'ralph ziti identity create NAME --role daemon'? Give --name if you know it`
      : `identity "${identityName}" may host several daemons' services (${names.join(", ")}): give --name`,
  );
}

/**
 * Joins this machine to a network as a daemon: enrols with the one-time token
 * (the key pair is made here), learns its name from what the identity may
 * host (or takes `name`), and writes a complete daemon config. Either all of
 * it is written or none: a refused token leaves no identity and no config.
 */
export async function joinNetwork(opts: { token: string; source: string; name?: string; workspaceDir?: string; configFile?: string }): Promise<JoinResult> {
  const configFile = resolve(opts.configFile ?? defaultDaemonConfigPath());
  if (existsSync(configFile)) throw new InvalidInputError(`${configFile} exists: this machine already has a daemon config; remove it to join again, or give --config FILE`);
  const { controller } = readEnrolmentToken(opts.token, opts.source);
  const identityFile = join(dirname(configFile), "identity.json");
  if (existsSync(identityFile)) throw new InvalidInputError(`${identityFile} exists (from an earlier join?): remove it to join again, or give --config FILE in another directory`);
  mkdirSync(dirname(configFile), { recursive: true, mode: 0o700 });
  await enrollIdentity(opts.token, identityFile, opts.source);
  try {
    let name = opts.name;
    if (!name) {
      const view = await identityView(identityFile);
      name = daemonNameOf(view.bindable, view.name);
    }
    const parsed = DaemonConfigSchema.safeParse({ name, identityFile, workspaceDir: resolve(opts.workspaceDir ?? join(ralphHome(), "daemon", "workspace")) });
    if (!parsed.success) throw new InvalidInputError(`cannot write a daemon config: ${parsed.error.issues[0]?.path.join(".")}: ${parsed.error.issues[0]?.message}`);
    const config: DaemonConfig = parsed.data;
    const tmp = `${configFile}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(config, null, 2) + "\n", { mode: 0o600 });
    renameSync(tmp, configFile);
    return { name: config.name, configFile, identityFile, controller };
  } catch (err) {
    // The token is spent: say so, and leave nothing half-done behind.
    rmSync(identityFile, { force: true });
    const why = (err as Error).message;
    throw rephrased(err, `${why}\n(the token was used up by this attempt: ask the network's admin for a new one)`, UnavailableError);
  }
}
