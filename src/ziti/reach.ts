import { readFileSync } from "node:fs";
import { Agent, request as undiciRequest } from "undici";
import { UnavailableError } from "../util/errors.js";

/** Why a controller could not be reached, named as such (for messages and tests). */
export type UnreachableKind = "refused" | "name-mismatch" | "untrusted" | "timeout" | "unresolved" | "unroutable" | "other";

/** A controller this host cannot reach; `kind` says why. */
export class ControllerUnreachable extends UnavailableError {
  constructor(
    readonly kind: UnreachableKind,
    message: string,
  ) {
    super(message);
    this.name = "ControllerUnreachable";
  }
}

interface NodeCause {
  code?: string;
  message?: string;
  host?: string;
  cert?: { subjectaltname?: string };
}

/**
 * Names the real cause of a failed connection to a controller: a refused
 * connection is not a refused identity, and a certificate issued for other
 * names is not a stopped controller. `hint` says what to do for the cases
 * that need the caller's context (e.g. which network's status to check).
 */
export function unreachable(err: unknown, url: string, hint = ""): ControllerUnreachable {
  const e = err as { name?: string; message?: string; cause?: NodeCause };
  const cause: NodeCause = e.cause ?? (e as NodeCause);
  const code = cause.code ?? "";
  const where = new URL(url).host;
  const suffix = hint ? ` ${hint}` : "";
  if (code === "ECONNREFUSED") return new ControllerUnreachable("refused", `cannot reach the Ziti controller at ${where}: connection refused (nothing listens there: is the network up, and are its address and port right?)${suffix}`);
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    const names = cause.cert?.subjectaltname ?? "(unknown)";
    return new ControllerUnreachable(
      "name-mismatch",
      `the Ziti controller at ${where} presents a certificate for other names: it was reached as "${cause.host ?? new URL(url).hostname}" but its certificate names ${names}; ` +
        `the network must be advertised under the name its machines use ('ralph ziti up --advertise HOST')${suffix}`,
    );
  }
  if (/CERT|SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER/.test(code)) {
    return new ControllerUnreachable("untrusted", `the Ziti controller at ${where} presents a certificate its CA does not sign (${code}): another network answers there, or the network was recreated${suffix}`);
  }
  if (code === "UND_ERR_CONNECT_TIMEOUT" || code === "ETIMEDOUT" || e.name === "TimeoutError" || e.name === "AbortError") {
    return new ControllerUnreachable("timeout", `cannot reach the Ziti controller at ${where}: timed out (a firewall dropping the port, or an address not reachable from this host)${suffix}`);
  }
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return new ControllerUnreachable("unresolved", `cannot resolve the Ziti controller's name in ${where} on this host (${code})${suffix}`);
  if (code === "EHOSTUNREACH" || code === "ENETUNREACH") return new ControllerUnreachable("unroutable", `cannot reach the Ziti controller at ${where}: no route from this host (${code})${suffix}`);
  return new ControllerUnreachable("other", `cannot reach the Ziti controller at ${where} (${code || cause.message || e.message})${suffix}`);
}

/** An enrolled identity file's parts: the controller it names and its certificates (PEM). */
export interface EnrolledIdentity {
  controller: string;
  cert: string;
  key: string;
  ca: string;
}

const pem = (v: string) => v.replace(/^pem:/, "");

export function readEnrolledIdentity(file: string): EnrolledIdentity {
  let json: { ztAPI?: string; id?: { cert?: string; key?: string; ca?: string } };
  try {
    json = JSON.parse(readFileSync(file, "utf8")) as typeof json;
  } catch (err) {
    throw new Error(`cannot read the Ziti identity ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (!json.ztAPI || !json.id?.cert || !json.id.key || !json.id.ca) throw new Error(`${file} is not an enrolled Ziti identity (ztAPI and id.cert, id.key, id.ca)`);
  return { controller: new URL(json.ztAPI).origin, cert: pem(json.id.cert), key: pem(json.id.key), ca: pem(json.id.ca) };
}

/**
 * What the controller says about an enrolled identity, asked over the Edge
 * Client API with the identity's own certificate: its name and the services
 * it may bind. No admin credential, no local listener (plain REST over TLS,
 * verified against the CA in the identity file).
 */
export async function identityView(file: string, timeoutMs = 10_000): Promise<{ name: string; bindable: string[]; dialable: string[] }> {
  const id = readEnrolledIdentity(file);
  const agent = new Agent({ connect: { ca: id.ca, cert: id.cert, key: id.key, timeout: timeoutMs } });
  const base = `${id.controller}/edge/client/v1`;
  const call = async <T>(method: string, path: string, token?: string): Promise<T> => {
    let res;
    try {
      // request, not fetch: fetch refuses some ports outright ("bad port") before connecting.
      res = await undiciRequest(base + path, {
        method: method as "GET" | "POST" | "DELETE",
        dispatcher: agent,
        headers: { "content-type": "application/json", ...(token ? { "zt-session": token } : {}) },
        body: method === "POST" ? "{}" : undefined,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw unreachable(err, id.controller);
    }
    const body = (await res.body.json().catch(() => ({}))) as { data?: T; error?: { code?: string; message?: string } };
    if (res.statusCode >= 400 || body.error) {
      const code = body.error?.code ?? String(res.statusCode);
      if (res.statusCode === 401 || /UNAUTHORIZED|INVALID_AUTH/.test(code)) {
        throw new IdentityRefused(`the Ziti controller at ${new URL(id.controller).host} refused this identity (${code}): it was revoked, or belongs to a network that was recreated; ask the network's admin for a new token`);
      }
      throw new UnavailableError(`the Ziti controller refused ${method} ${path}: ${body.error?.message ?? res.statusCode}`);
    }
    return body.data as T;
  };
  try {
    const session = await call<{ token: string; identity: { name: string } }>("POST", "/authenticate?method=cert");
    const services = await call<{ name: string; permissions?: string[] }[]>("GET", "/services?limit=500", session.token);
    await call("DELETE", "/current-api-session", session.token).catch(() => undefined);
    const withPermission = (p: string) => services.filter((s) => s.permissions?.includes(p)).map((s) => s.name);
    return { name: session.identity.name, bindable: withPermission("Bind"), dialable: withPermission("Dial") };
  } finally {
    await agent.close();
  }
}

/** The controller knows the identity's certificate no more (revoked, or another network). */
export class IdentityRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = "IdentityRefused";
  }
}
