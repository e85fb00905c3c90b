import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { z } from "zod";

const IdentityFileSchema = z.object({
  ztAPI: z.string(),
  id: z.object({ cert: z.string().min(1), key: z.string().min(1), ca: z.string().optional() }),
});

/**
 * The controller id of an enrolled identity: the enrolment certificate's
 * common name. Lets a daemon name exactly itself in its Bind policy.
 */
export function identityIdOf(file: string): string {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new Error(`cannot read the Ziti identity ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): enrol one with 'ralph ziti identity create NAME --role daemon|client'`);
  }
  const parsed = IdentityFileSchema.safeParse(json);
  if (!parsed.success) throw new Error(`${file} is not an enrolled Ziti identity: enrol one with 'ralph ziti identity create NAME --role daemon|client'`);
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(new X509Certificate(parsed.data.id.cert.replace(/^pem:/, "")).subject)?.[1];
  if (!cn) throw new Error(`the certificate in ${file} has no common name, so it names no identity`);
  return cn;
}
