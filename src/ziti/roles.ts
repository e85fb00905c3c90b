/**
 * Role attributes and policy names that tie Ralph's Ziti entities together.
 * Clients tagged `ralph-client` may Dial services tagged `ralph-service`. Each
 * daemon may Bind only its two services (provisioned by the admin side): its
 * Bind policy names exactly its identity and exactly those services, which
 * also carry its own attribute.
 */
export const Roles = {
  daemon: "ralph-daemon",
  client: "ralph-client",
  service: "ralph-service",
} as const;

export const controlServiceName = (daemonName: string): string => `ralph-control-${daemonName}`;
/**
 * The one service that carries every loop's opencode of daemon `daemonName`:
 * each loop is an addressable terminator of it, named by the loop's id.
 */
export const loopsServiceName = (daemonName: string): string => `ralph-loops-${daemonName}`;

/** The attribute on every service daemon `daemonName` hosts. */
export const hostedBy = (daemonName: string): string => `ralph-hosted-by-${daemonName}`;
export const bindPolicyName = (daemonName: string): string => `ralph-bind-${daemonName}`;
export const DIAL_POLICY = "ralph-clients-dial-services";
export const ROUTER_POLICY = "ralph-identities-use-routers";
export const SERVICE_ROUTER_POLICY = "ralph-services-use-routers";

/** Attributes of a service hosted by `daemonName`. */
export const serviceRoles = (daemonName: string): string[] => [Roles.service, hostedBy(daemonName)];
