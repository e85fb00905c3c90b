import type { Entity, ManagementClient } from "./mgmt.js";
import { bindPolicyName, controlServiceName, hostedBy, loopsServiceName, serviceRoles } from "./roles.js";

/**
 * The admin side of a daemon that hosts with nothing but its own identity
 * (tools/ziti/host): its two services, created once, and its Bind policy.
 *
 * - `ralph-control-NAME`: the control API.
 * - `ralph-loops-NAME`: every loop's opencode, each loop an addressable
 *   terminator named by its id.
 *
 * No configs: the host helper hosts through the SDK and forwards to the
 * loopback port it is given, so nothing needs host.v1 or intercept.v1. Both
 * services carry `ralph-service` (the clients' Dial policy) and
 * `ralph-hosted-by-NAME`, and require end-to-end encryption.
 */
export interface DaemonServices {
  controlServiceId: string;
  loopsServiceId: string;
  bindPolicyId: string;
}

export const daemonServiceNames = (daemon: string): string[] => [controlServiceName(daemon), loopsServiceName(daemon)];

const filterByName = (name: string) => encodeURIComponent(`name="${name.replace(/"/g, '\\"')}"`);

async function findByName<T extends Entity>(m: ManagementClient, collection: string, name: string): Promise<T | undefined> {
  return (await m.request<T[]>("GET", `/${collection}?filter=${filterByName(name)}&limit=1`))[0];
}

type ServiceEntity = Entity & { encryptionRequired?: boolean; configs?: string[] | null };

/** Creates the service, or brings an existing one to exactly these attributes, no configs and encryption. */
async function ensureService(m: ManagementClient, name: string, daemon: string): Promise<string> {
  const body = { name, roleAttributes: serviceRoles(daemon), encryptionRequired: true, configs: [] as string[] };
  const existing = await findByName<ServiceEntity>(m, "services", name);
  if (!existing) return (await m.request<{ id: string }>("POST", "/services", body)).id;
  const same =
    existing.encryptionRequired === true &&
    (existing.configs ?? []).length === 0 &&
    [...(existing.roleAttributes ?? [])].sort().join(",") === [...body.roleAttributes].sort().join(",");
  if (!same) {
    await m.request("PUT", `/services/${existing.id}`, body);
    const now = await m.request<ServiceEntity>("GET", `/services/${existing.id}`);
    if (now.encryptionRequired !== true) {
      throw new Error(`service ${name} exists without end-to-end encryption and the controller would not change it: delete it and provision again`);
    }
  }
  return existing.id;
}

/**
 * Creates daemon `daemon`'s two services and its Bind policy
 * (`ralph-bind-NAME`), which names exactly its identity and exactly those two
 * services. Idempotent: run again, it rewrites what drifted.
 */
export async function provisionDaemonServices(m: ManagementClient, daemon: string, identityId: string): Promise<DaemonServices> {
  const controlServiceId = await ensureService(m, controlServiceName(daemon), daemon);
  const loopsServiceId = await ensureService(m, loopsServiceName(daemon), daemon);
  const bindPolicyId = await m.ensureServicePolicy(bindPolicyName(daemon), "Bind", [`@${identityId}`], [`@${controlServiceId}`, `@${loopsServiceId}`]);
  return { controlServiceId, loopsServiceId, bindPolicyId };
}

/**
 * Removes daemon `daemon`'s Bind policy and every service it hosts: its two
 * services by name, and any other tagged `ralph-hosted-by-NAME` (e.g. the
 * per-loop services of earlier releases). False when there was nothing.
 */
export async function removeDaemonServices(m: ManagementClient, daemon: string): Promise<boolean> {
  let removed = false;
  const policy = await findByName(m, "service-policies", bindPolicyName(daemon));
  if (policy) {
    await m.request("DELETE", `/service-policies/${policy.id}`);
    removed = true;
  }
  const tagged = await m.request<Entity[]>("GET", `/services?filter=${encodeURIComponent(`anyOf(roleAttributes)="${hostedBy(daemon)}"`)}&limit=500`);
  const named = (await Promise.all(daemonServiceNames(daemon).map((n) => findByName(m, "services", n)))).filter((s): s is Entity => s !== undefined);
  const ids = new Set([...tagged, ...named].map((s) => s.id));
  for (const id of ids) {
    await m.request("DELETE", `/services/${id}`);
    removed = true;
  }
  return removed;
}
