import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { execa } from "execa";
import { InvalidInputError } from "../util/errors.js";
import { ensureZitiBinary } from "./binary.js";
import { readEnrolmentToken } from "./token.js";

/** The real reason `ziti edge enroll` gave up, in words that say what to do. */
function enrolmentFailure(all: string, controller: string): string {
  // Its usage text (which mentions certificates) comes with every failure: read only the error.
  const output = all.split("\n").filter((l) => /failed to enroll|error/i.test(l)).join(" ");
  if (/connection refused/i.test(output)) return `cannot reach the controller at ${controller}: connection refused (is the network up, and reachable from here?)`;
  if (/no such host|i\/o timeout|deadline exceeded|network is unreachable/i.test(output)) return `cannot reach the controller at ${controller} from this machine (check the address and the firewall)`;
  if (/x509|certificate/i.test(output)) return `the controller at ${controller} does not present the certificate this token was signed for: the token belongs to another network, or the network was recreated`;
  if (/expired/i.test(output)) return "the token has expired: revoke the identity and create it again on the network's host";
  if (/INVALID_ENROLLMENT_TOKEN|not found|invalid|already|unauthori[sz]ed|404|401/i.test(output)) {
    return "the controller refused the token: it was already used, revoked, or issued by another network; create a new one on the network's host ('ralph ziti identity revoke NAME', then 'ralph ziti identity create NAME ...')";
  }
  return "the controller did not accept the token";
}

/**
 * Turns a one-time enrolment token into an identity file (mode 0600): the
 * key pair is made here and the private key never leaves this machine. A
 * failure leaves no file behind.
 */
export async function enrollIdentity(token: string, outFile: string, source = "the token"): Promise<void> {
  const { jwt, controller } = readEnrolmentToken(token, source);
  if (existsSync(outFile)) throw new InvalidInputError(`${outFile} already exists: choose another --out, or remove it first`);
  const ziti = await ensureZitiBinary();
  const work = mkdtempSync(join(tmpdir(), "ralph-enroll-"));
  try {
    const jwtFile = join(work, "identity.jwt");
    writeFileSync(jwtFile, jwt, { mode: 0o600 });
    mkdirSync(dirname(outFile), { recursive: true, mode: 0o700 });
    const r = await execa(ziti, ["edge", "enroll", "--jwt", jwtFile, "--out", outFile], { reject: false, all: true });
    if (r.exitCode !== 0 || !existsSync(outFile)) {
      rmSync(outFile, { force: true });
      throw new InvalidInputError(`enrolment failed: ${enrolmentFailure(r.all ?? "", controller)}`);
    }
    chmodSync(outFile, 0o600);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
