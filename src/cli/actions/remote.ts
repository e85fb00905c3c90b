import { existsSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { readRemotes, upsertRemote, writeRemotes } from "../../client/remotes.js";
import { homeDir } from "../../config/paths.js";
import { InvalidInputError, NotFoundError } from "../../util/errors.js";
import { controlServiceName } from "../../ziti/roles.js";
import { looksLikeToken } from "../../ziti/token.js";
import { ExitCode } from "../exit-codes.js";
import { printJson, style } from "../output.js";

/** An enrolled identity file, or a clear refusal of what it is instead. */
function checkIdentityFile(file: string): void {
  if (!existsSync(file)) throw new InvalidInputError(`no identity file at ${file}: create a token with 'ralph ziti identity create NAME --role client' on the network's host and use --token`);
  const text = readFileSync(file, "utf8");
  if (looksLikeToken(text)) throw new InvalidInputError(`${file} is a one-time enrolment token, not an enrolled identity: use --token ${file} (this machine then makes its own key pair)`);
  let identity: { ztAPI?: unknown; id?: { key?: unknown; cert?: unknown; ca?: unknown } } | undefined;
  try {
    identity = JSON.parse(text) as typeof identity;
  } catch {
    identity = undefined;
  }
  if (typeof identity?.ztAPI !== "string" || !identity.id?.key || !identity.id.cert || !identity.id.ca) {
    throw new InvalidInputError(`${file} is not an enrolled Ziti identity (a JSON file with ztAPI and id.key, id.cert, id.ca)`);
  }
}

/**
 * The daemon's control service for a remote: ralph-control-NAME when this
 * identity may dial it, else the only daemon's it may dial (a remote named
 * otherwise than its daemon). Several candidates keep the default and name them.
 */
async function findControlService(identityFile: string, name: string): Promise<string> {
  const { identityView } = await import("../../ziti/reach.js");
  const wanted = controlServiceName(name);
  const controls = (await identityView(identityFile)).dialable.filter((s) => s.startsWith(controlServiceName("")));
  if (controls.includes(wanted) || controls.length === 0) return wanted;
  if (controls.length === 1) {
    process.stderr.write(`the daemon this identity may reach: ${controls[0]}\n`);
    return controls[0]!;
  }
  process.stderr.write(`${style.yellow("note:")} this identity may reach ${[...controls].sort().join(", ")}; using ${wanted}; for another: 'ralph remote add OTHER --identity ${identityFile} --service SERVICE'\n`);
  return wanted;
}

export async function add(name: string, o: { token?: string; identity?: string; service?: string }): Promise<void> {
  if ((o.token === undefined) === (o.identity === undefined)) throw new InvalidInputError("give --token FILE (enrol now) or --identity FILE (enrolled before), one of them");
  if (readRemotes().remotes[name]) throw new InvalidInputError(`a remote named "${name}" exists: 'ralph remote rm ${name}' first, or choose another name`);
  const service = o.service ?? controlServiceName(name);
  if (o.identity !== undefined) {
    const identityFile = resolve(o.identity);
    checkIdentityFile(identityFile);
    upsertRemote(name, { identityFile, service });
    process.stdout.write(`remote ${name} added\n`);
    return;
  }
  // Only `add` needs these; `remote ls` stays quick.
  const [{ enrollIdentity }, { withControlClient }, { expectOk }] = await Promise.all([import("../../ziti/enroll.js"), import("../../client/connection.js"), import("../../client/api.js")]);
  const identityFile = join(homeDir("client", "identities"), `${name}.json`);
  // A file left by an earlier remote of this name that was removed.
  rmSync(identityFile, { force: true });
  await enrollIdentity(readFileSync(o.token === "-" ? 0 : o.token!, "utf8"), identityFile, o.token === "-" ? "standard input" : o.token);
  const found = o.service ? service : await findControlService(identityFile, name).catch(() => service);
  upsertRemote(name, { identityFile, service: found });
  process.stderr.write(`enrolled: ${identityFile} (its private key was made here)\n`);
  try {
    const health = await withControlClient(name, (c) => expectOk(c.remoteName, c.api.health.$get()));
    process.stdout.write(`remote ${name} added: ralphd ${health.name} answers (ralph ${health.versions.ralph})\n`);
  } catch (err) {
    process.stdout.write(`remote ${name} added\n`);
    process.stderr.write(`${style.yellow("warning:")} ${found} does not answer yet: ${(err as Error).message}\n`);
    process.exitCode = ExitCode.Unavailable;
  }
}

export function ls(o: { json?: boolean }): void {
  const { remotes } = readRemotes();
  if (o.json) return printJson(Object.entries(remotes).map(([name, r]) => ({ name, ...r })));
  for (const [name, r] of Object.entries(remotes)) process.stdout.write(`${name}\t${r.service}\t${r.identityFile}\n`);
}

export function rm(name: string): void {
  const file = readRemotes();
  const gone = file.remotes[name];
  if (!gone) throw new NotFoundError(`no remote named "${name}"`);
  delete file.remotes[name];
  writeRemotes(file);
  // An identity enrolled for this remote goes with it; one given with --identity stays.
  if (gone.identityFile === join(homeDir("client", "identities"), `${name}.json`)) rmSync(gone.identityFile, { force: true });
  process.stdout.write(`remote ${name} removed\n`);
}
