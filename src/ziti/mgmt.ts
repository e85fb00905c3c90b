import { readFileSync } from "node:fs";
import { Agent, fetch as undiciFetch } from "undici";
import type { ControllerConfig } from "../daemon/config.js";
import { unreachable } from "./reach.js";
import { DIAL_POLICY, ROUTER_POLICY, Roles, SERVICE_ROUTER_POLICY } from "./roles.js";

/** An error answered by the controller, with its own message. */
export class ZitiApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ZitiApiError";
  }
}

export interface Envelope<T> {
  data: T;
  error?: { code?: string; message?: string; cause?: { message?: string; reason?: string } };
}

export interface Entity {
  id: string;
  name: string;
  roleAttributes?: string[] | null;
}

export type PolicyType = "Bind" | "Dial";

/** The controller's own message (and cause) for a refused call, without the query string. */
export function controllerError(status: number, statusText: string, body: Envelope<unknown>, method: string, path: string): ZitiApiError {
  const e = body.error ?? {};
  const detail = e.cause?.reason ?? e.cause?.message;
  return new ZitiApiError(status, e.code ?? "UNKNOWN", `controller refused ${method} ${path.split("?")[0]}: ${e.message ?? statusText}${detail ? ` (${detail})` : ""}`);
}

/** A role-attribute policy: AnyOf semantics, no posture checks. */
export function servicePolicyBody(name: string, type: PolicyType, identityRoles: string[], serviceRoles: string[]) {
  return { name, type, semantic: "AnyOf", identityRoles, serviceRoles, postureCheckRoles: [] as string[] };
}

/**
 * A typed client for the Edge Management API. TLS is verified against the
 * controller's CA, always; the session is renewed when it expires.
 */
export class ManagementClient {
  private token: string | undefined;
  private constructor(
    private readonly base: string,
    private readonly agent: Agent,
    private readonly auth: ControllerConfig["auth"],
  ) {}

  static async connect(cfg: ControllerConfig): Promise<ManagementClient> {
    let ca: string;
    try {
      ca = readFileSync(cfg.caFile, "utf8");
    } catch {
      throw new Error(`cannot read the controller CA ${cfg.caFile}: point controller.caFile at the PEM that signs the controller's certificate`);
    }
    const connect: Record<string, unknown> = { ca };
    if (cfg.auth.method === "cert") {
      try {
        connect.cert = readFileSync(cfg.auth.certFile, "utf8");
        connect.key = readFileSync(cfg.auth.keyFile, "utf8");
      } catch (err) {
        throw new Error(`cannot read the admin certificate or key (${(err as Error).message}): fix controller.auth.certFile and keyFile`);
      }
    }
    const client = new ManagementClient(new URL("/edge/management/v1", cfg.url).toString(), new Agent({ connect }), cfg.auth);
    await client.login();
    return client;
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  private async login(): Promise<void> {
    let body = {};
    if (this.auth.method === "password") {
      let password: string;
      try {
        password = readFileSync(this.auth.passwordFile, "utf8").trim();
      } catch (err) {
        throw new Error(`cannot read the controller password (${(err as Error).message}): fix controller.auth.passwordFile`);
      }
      body = { username: this.auth.username, password };
    }
    const r = await this.raw<{ token: string }>("POST", `/authenticate?method=${this.auth.method}`, body, false);
    this.token = r.token;
  }

  private async raw<T>(method: string, path: string, body?: unknown, authed = true): Promise<T> {
    let res;
    try {
      res = await undiciFetch(this.base + path, {
        method,
        dispatcher: this.agent,
        headers: { "content-type": "application/json", ...(authed && this.token ? { "zt-session": this.token } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(15_000),
      });
    } catch (err) {
      throw unreachable(err, this.base, "('ralph ziti status' for the local network)");
    }
    const text = await res.text();
    const json = text ? (JSON.parse(text) as Envelope<T>) : ({ data: undefined } as Envelope<T>);
    // An expired or unknown session is answered 200 with an error envelope
    // (seen on 1.7.2), so the envelope decides, not only the status.
    if (!res.ok || json.error) throw controllerError(res.status, res.statusText, json, method, path);
    return json.data;
  }

  /** Calls the API, logging in again once if the session expired. */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    try {
      return await this.raw<T>(method, path, body);
    } catch (err) {
      if (err instanceof ZitiApiError && (err.status === 401 || err.code === "UNAUTHORIZED")) {
        await this.login();
        return this.raw<T>(method, path, body);
      }
      throw err;
    }
  }

  private async findByName<T extends Entity>(collection: string, name: string): Promise<T | undefined> {
    const filter = encodeURIComponent(`name="${name.replace(/"/g, '\\"')}"`);
    const list = await this.request<T[]>("GET", `/${collection}?filter=${filter}&limit=1`);
    return list[0];
  }

  private async deleteByName(collection: string, name: string): Promise<boolean> {
    const existing = await this.findByName(collection, name);
    if (!existing) return false;
    await this.request("DELETE", `/${collection}/${existing.id}`);
    return true;
  }

  getIdentity = (name: string) => this.findByName<Entity & { enrollment?: { ott?: { jwt?: string } } }>("identities", name);
  getService = (name: string) => this.findByName<Entity>("services", name);

  /**
   * Creates a non-admin identity with a one-time enrolment token that expires
   * at `expiresAt` (default: in 3 hours). A failure leaves no identity behind.
   */
  async createIdentity(name: string, role: "client" | "daemon", expiresAt = new Date(Date.now() + 3 * 3600_000)): Promise<{ id: string; jwt: string; expiresAt: string }> {
    if (await this.findByName("identities", name)) throw new Error(`a Ziti identity named "${name}" already exists: revoke it first or choose another name`);
    const { id } = await this.request<{ id: string }>("POST", "/identities", { name, type: "Default", isAdmin: false, roleAttributes: [Roles[role]] });
    try {
      const enrollment = await this.request<{ id: string }>("POST", "/enrollments", { identityId: id, method: "ott", expiresAt: expiresAt.toISOString() });
      const { jwt } = await this.request<{ jwt?: string }>("GET", `/enrollments/${enrollment.id}`);
      if (!jwt) throw new Error(`the controller returned no enrolment token for identity ${name}`);
      return { id, jwt, expiresAt: expiresAt.toISOString() };
    } catch (err) {
      await this.request("DELETE", `/identities/${id}`).catch(() => undefined);
      throw err;
    }
  }

  deleteIdentity = (name: string): Promise<boolean> => this.deleteByName("identities", name);

  /** Creates the policy, or rewrites it when it exists, so its grants are exactly these. */
  private async ensurePolicy(collection: "service-policies" | "edge-router-policies" | "service-edge-router-policies", body: { name: string }): Promise<string> {
    const existing = await this.findByName<Entity & Record<string, unknown>>(collection, body.name);
    if (!existing) return (await this.request<{ id: string }>("POST", `/${collection}`, body)).id;
    // Rewritten only when it drifted: every write makes the controller resync its routers.
    const norm = (v: unknown) => JSON.stringify(Array.isArray(v) ? [...v].sort() : (v ?? []));
    const drifted = Object.entries(body).some(([k, v]) => norm(existing[k]) !== norm(v));
    if (drifted) await this.request("PUT", `/${collection}/${existing.id}`, body);
    return existing.id;
  }

  ensureServicePolicy(name: string, type: PolicyType, identityRoles: string[], serviceRoles: string[]): Promise<string> {
    return this.ensurePolicy("service-policies", servicePolicyBody(name, type, identityRoles, serviceRoles));
  }

  /**
   * Lets Ralph's identities and services use every edge router. The
   * quickstart's network allows all of it already; a controller of one's own
   * (`ralph ziti login`) may allow nothing by default.
   */
  async ensureRouterPolicies(): Promise<void> {
    await this.ensurePolicy("edge-router-policies", { name: ROUTER_POLICY, semantic: "AnyOf", identityRoles: [`#${Roles.client}`, `#${Roles.daemon}`], edgeRouterRoles: ["#all"] } as { name: string });
    await this.ensurePolicy("service-edge-router-policies", { name: SERVICE_ROUTER_POLICY, semantic: "AnyOf", serviceRoles: [`#${Roles.service}`], edgeRouterRoles: ["#all"] } as { name: string });
  }

  /** Clients tagged ralph-client may dial every Ralph service. */
  ensureDialPolicy(): Promise<string> {
    return this.ensureServicePolicy(DIAL_POLICY, "Dial", [`#${Roles.client}`], [`#${Roles.service}`]);
  }

  /** Replaces the password of the identity this client is logged in as. */
  async changeOwnPassword(currentPassword: string, password: string): Promise<void> {
    const authenticators = await this.request<{ id: string; method: string; username?: string }[]>("GET", "/current-identity/authenticators");
    const updb = authenticators.find((a) => a.method === "updb");
    if (!updb?.username) throw new Error("the controller shows no password authenticator for this login");
    await this.request("PUT", `/current-identity/authenticators/${updb.id}`, { username: updb.username, currentPassword, password });
  }

  async terminators(serviceId: string): Promise<{ id: string }[]> {
    return this.request<{ id: string }[]>("GET", `/services/${serviceId}/terminators`);
  }

  /** The controller's own analysis of what the policies let an identity do with a service. */
  async policyAdvice(identityId: string, serviceId: string): Promise<{ bind: boolean; dial: boolean }> {
    // The controller leaves out fields that are false.
    const a = await this.request<{ isBindAllowed?: boolean; isDialAllowed?: boolean }>("GET", `/identities/${identityId}/policy-advice/${serviceId}`);
    return { bind: a.isBindAllowed === true, dial: a.isDialAllowed === true };
  }

  async listNames(collection: "identities" | "services" | "service-policies"): Promise<Entity[]> {
    return this.request<Entity[]>("GET", `/${collection}?limit=500`);
  }

  /** The quickstart's router is online (it registers itself on start). */
  async routersOnline(): Promise<number> {
    const routers = await this.request<{ isOnline?: boolean }[]>("GET", "/edge-routers?limit=100");
    return routers.filter((r) => r.isOnline).length;
  }
}
