import { chmodSync, mkdtempSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { execa } from "execa";
import { ensureZitiBinary } from "./binary.js";

/** Turns a one-time enrolment token into an identity file (mode 0600). */
export async function enrollIdentity(jwt: string, outFile: string): Promise<void> {
  const ziti = await ensureZitiBinary();
  const work = mkdtempSync(join(tmpdir(), "ralph-enroll-"));
  try {
    const jwtFile = join(work, "identity.jwt");
    writeFileSync(jwtFile, jwt, { mode: 0o600 });
    mkdirSync(dirname(outFile), { recursive: true, mode: 0o700 });
    const r = await execa(ziti, ["edge", "enroll", "--jwt", jwtFile, "--out", outFile], { reject: false, all: true });
    if (r.exitCode !== 0) throw new Error(`ziti edge enroll failed: ${(r.all ?? "").trim().split("\n").slice(-3).join(" ")}; the token may be used up or expired: create the identity again`);
    chmodSync(outFile, 0o600);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
