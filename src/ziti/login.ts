import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { homeDir } from "../config/paths.js";
import { ControllerSchema, type ControllerConfig } from "../daemon/config.js";
import { ManagementClient } from "./mgmt.js";
import { InvalidInputError } from "../util/errors.js";

/**
 * Admin access to a controller that `ralph ziti up` did not create, for the
 * identity and status commands. Kept on the admin's machine only, in
 * RALPH_HOME/ziti/login/ (0700; every file 0600): the CA, and a copy of the
 * password or of the admin certificate and key. Nothing here is ever given
 * to a daemon or a client.
 */
const loginDir = () => homeDir("ziti", "login");
const loginFile = () => join(loginDir(), "controller.json");

function writePrivate(file: string, content: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode: 0o600 });
  renameSync(tmp, file);
}

export class LoginRefused extends InvalidInputError {
  constructor(message: string) {
    super(message);
    this.name = "LoginRefused";
  }
}

/** The controller this RALPH_HOME is logged in to, if any. */
export function savedLogin(): ControllerConfig | undefined {
  const file = loginFile();
  if (!existsSync(file)) return undefined;
  return ControllerSchema.parse(JSON.parse(readFileSync(file, "utf8")));
}

export function logout(): boolean {
  const had = existsSync(loginFile());
  rmSync(loginDir(), { recursive: true, force: true });
  return had;
}

const read = (file: string, what: string): string => {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new LoginRefused(`cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
};

/**
 * Logs in once to check the credentials, then keeps them. The CA must be
 * given: trusting whatever certificate the controller presents on first use
 * would let anyone on the path capture the admin password, so the PEM is
 * copied from the controller's machine (it is public) and always verified.
 */
export async function login(opts: {
  url: string;
  caFile: string;
  username?: string;
  passwordFile?: string;
  certFile?: string;
  keyFile?: string;
}): Promise<{ controller: string; identities: number }> {
  const url = new URL(opts.url);
  if (url.protocol !== "https:") throw new LoginRefused(`${opts.url}: the controller's URL is https://HOST:PORT`);
  const ca = read(opts.caFile, "the controller's CA");
  try {
    new X509Certificate(ca);
  } catch {
    throw new LoginRefused(`${opts.caFile} is not a PEM certificate: give the CA that signs the controller's certificate (on a quickstart network: pki/root-ca/certs/root-ca.cert)`);
  }
  const byPassword = opts.username !== undefined || opts.passwordFile !== undefined;
  const byCert = opts.certFile !== undefined || opts.keyFile !== undefined;
  if (byPassword === byCert) throw new LoginRefused("give --username and --password-file, or --cert and --key, one of them");
  if (byPassword && !(opts.username && opts.passwordFile)) throw new LoginRefused("--username and --password-file go together");
  if (byCert && !(opts.certFile && opts.keyFile)) throw new LoginRefused("--cert and --key go together");

  // Checked from a scratch copy first, so a failed login keeps an earlier one.
  const dir = loginDir();
  const staged = (name: string) => join(dir, `${name}.new`);
  writePrivate(staged("ca.pem"), ca);
  let auth: ControllerConfig["auth"];
  if (byPassword) {
    writePrivate(staged("password"), read(opts.passwordFile!, "the password file").trim() + "\n");
    auth = { method: "password", username: opts.username!, passwordFile: join(dir, "password") };
  } else {
    writePrivate(staged("admin.cert"), read(opts.certFile!, "the admin certificate"));
    writePrivate(staged("admin.key"), read(opts.keyFile!, "the admin key"));
    auth = { method: "cert", certFile: join(dir, "admin.cert"), keyFile: join(dir, "admin.key") };
  }
  const stagedAuth: ControllerConfig["auth"] =
    auth.method === "password" ? { ...auth, passwordFile: staged("password") } : { method: "cert", certFile: staged("admin.cert"), keyFile: staged("admin.key") };
  const config: ControllerConfig = { url: url.origin, caFile: join(dir, "ca.pem"), auth };
  let identities: number;
  try {
    const m = await ManagementClient.connect({ url: url.origin, caFile: staged("ca.pem"), auth: stagedAuth });
    try {
      identities = (await m.listNames("identities")).length;
    } finally {
      await m.close();
    }
  } catch (err) {
    for (const f of ["ca.pem", "password", "admin.cert", "admin.key"]) rmSync(staged(f), { force: true });
    throw new LoginRefused(`login to ${url.origin} failed: ${(err as Error).message}`);
  }
  for (const f of ["ca.pem", "password", "admin.cert", "admin.key"]) if (existsSync(staged(f))) renameSync(staged(f), join(dir, f));
  writePrivate(loginFile(), JSON.stringify(config, null, 2) + "\n");
  return { controller: url.origin, identities };
}

/** A ManagementClient for the controller saved by `ralph ziti login`. */
export async function loginManagementClient(): Promise<ManagementClient | undefined> {
  const saved = savedLogin();
  return saved ? ManagementClient.connect(saved) : undefined;
}
