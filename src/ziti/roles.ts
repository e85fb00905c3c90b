/**
 * Role attributes that tie Ralph's Ziti entities together. Policies grant by
 * attribute: daemons may Bind and clients may Dial services tagged
 * `ralph-service`, and nothing else.
 */
export const Roles = {
  daemon: "ralph-daemon",
  client: "ralph-client",
  service: "ralph-service",
} as const;

export const controlServiceName = (daemonName: string): string => `ralph-control-${daemonName}`;
export const loopServiceName = (daemonName: string, loopId: string): string => `ralph-loop-${daemonName}-${loopId}`;
