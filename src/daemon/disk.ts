import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import type { DiskUsage } from "../contract/schemas.js";

/** Bytes on disk under `path` (allocated blocks), never following a symlink; 0 when it is gone. */
export async function diskBytes(path: string): Promise<number> {
  let st;
  try {
    st = await lstat(path);
  } catch {
    return 0;
  }
  let total = st.blocks * 512;
  if (st.isDirectory()) {
    const names = await readdir(path).catch(() => [] as string[]);
    for (const n of names) total += await diskBytes(join(path, n));
  }
  return total;
}


/**
 * The daemon's disk, measured in the background: walking a large workspace
 * takes a while, and `/health` answers every command's readiness probe.
 */
export class DiskGauge {
  private last: DiskUsage | undefined;
  private running: Promise<DiskUsage> | undefined;

  constructor(private readonly parts: { worktrees: string; mirrors: string; state: string[] }) {}

  /** The newest measurement, if any; starts a new one when it is older than `maxAgeMs`. */
  current(maxAgeMs = 60_000): DiskUsage | null {
    if (!this.last || Date.now() - Date.parse(this.last.measuredAt) > maxAgeMs) void this.measure().catch(() => undefined);
    return this.last ?? null;
  }

  measure(): Promise<DiskUsage> {
    this.running ??= (async () => {
      const worktreesBytes = await diskBytes(this.parts.worktrees);
      const mirrorsBytes = await diskBytes(this.parts.mirrors);
      let stateBytes = 0;
      for (const p of this.parts.state) stateBytes += await diskBytes(p);
      this.last = { totalBytes: worktreesBytes + mirrorsBytes + stateBytes, worktreesBytes, mirrorsBytes, stateBytes, measuredAt: new Date().toISOString() };
      return this.last;
    })().finally(() => (this.running = undefined));
    return this.running;
  }
}
