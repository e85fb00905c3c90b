import { z } from "zod";

/** What a loop's events and summary say about its sandbox. */
export const SandboxInfoSchema = z.object({
  /** "off": the owner opted out, and the agent reaches everything the daemon's user can. */
  mode: z.enum(["on", "off"]),
  /** How its limits are enforced on this host. */
  enforcement: z.enum(["cgroup-v1", "cgroup-v2", "rlimit"]).optional(),
  limits: z.object({ memoryMb: z.number(), pids: z.number(), cpuWeight: z.number() }).optional(),
  /** HOST[:PORT] it may reach through its egress proxy. */
  allowNet: z.array(z.string()).optional(),
});
export type SandboxInfo = z.infer<typeof SandboxInfoSchema>;
