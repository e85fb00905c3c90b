import { rmSync } from "node:fs";
import { join } from "node:path";
import type { PruneResult } from "../contract/schemas.js";
import { diskBytes } from "./disk.js";
import type { LoopRow, Store } from "./store.js";
import type { Workspace } from "./workspace.js";


const DAY_MS = 86_400_000;

/**
 * What finished loops leave on disk: their worktree and opencode log are kept
 * for inspection for `worktreeDays`, then removed; a mirror goes with the last
 * loop that needs it. One clean-up runs at a time.
 */
export class Retention {
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: Store,
    private readonly workspace: Workspace,
    /** Per-loop state (opencode data and log) lives in stateDir/ID. */
    private readonly stateDir: string,
    private readonly worktreeDays: number,
    /** Origins of loops being started: their mirror is in use before their row exists. */
    private readonly startingOrigins: () => Iterable<string>,
    private readonly log: (line: string) => void,
  ) {}

  /** Removes the worktree and log of every loop that finished more than the retention period ago, then unused mirrors. */
  prune(now = Date.now()): Promise<PruneResult> {
    return this.serially(async () => {
      const cutoff = new Date(now - this.worktreeDays * DAY_MS).toISOString();
      const result: PruneResult = { loops: [], mirrors: 0, freedBytes: 0 };
      for (const row of this.store.prunable(cutoff)) {
        result.freedBytes += await this.removeFiles(row);
        this.store.updateLoop(row.id, { prunedAt: new Date().toISOString() });
        result.loops.push(row.id);
      }
      return this.withMirrors(result);
    });
  }

  /** Forgets a finished loop now: its files, then its row and events ('ralph rm'). */
  forget(row: LoopRow): Promise<PruneResult> {
    return this.serially(async () => {
      const freedBytes = await this.removeFiles(row);
      this.store.deleteLoop(row.id);
      return this.withMirrors({ loops: [row.id], mirrors: 0, freedBytes });
    });
  }

  private serially<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.catch(() => undefined).then(fn);
    this.chain = next;
    return next;
  }

  private async removeFiles(row: LoopRow): Promise<number> {
    const state = join(this.stateDir, row.id);
    const bytes = (await diskBytes(row.worktree)) + (await diskBytes(state));
    await this.workspace.removeWorktree(row.id, row.origin, row.worktree);
    rmSync(state, { recursive: true, force: true });
    this.log(`loop ${row.id}: removed its worktree and log (${bytes} bytes)`);
    return bytes;
  }

  private async withMirrors(result: PruneResult): Promise<PruneResult> {
    this.store.checkpoint();
    const inUse = () => [...this.store.originsInUse(), ...this.startingOrigins()];
    // Only the mirrors about to go are measured; which ones go is decided again at removal.
    let freed = 0;
    for (const mirror of this.workspace.unusedMirrors(inUse())) freed += await diskBytes(mirror);
    result.mirrors = this.workspace.removeUnusedMirrors(inUse());
    if (result.mirrors > 0) {
      result.freedBytes += freed;
      this.log(`removed ${result.mirrors} mirror(s) no loop uses (${freed} bytes)`);
    }
    return result;
  }
}
