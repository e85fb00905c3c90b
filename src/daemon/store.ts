import Database from "better-sqlite3";
import { chmodSync, existsSync } from "node:fs";
import type { LoopState, RecordedEvent } from "../contract/events.js";
import { emptyUsage, type Usage } from "../loop/usage.js";
import type { SandboxInfo } from "../sandbox/info.js";

export { ACTIVE_STATES, type LoopState } from "../contract/events.js";

export interface LoopRow {
  id: string;
  origin: string;
  branch: string;
  taskDir: string;
  worktree: string;
  status: LoopState;
  iteration: number;
  storyId: string | null;
  passed: number;
  total: number;
  maxIterations: number;
  iterationTimeoutSeconds: number;
  stallTimeoutSeconds: number;
  maxCostUsd: number | null;
  maxTokens: number | null;
  /** What the loop used so far. */
  usage: Usage;
  model: string | null;
  createdAt: string;
  updatedAt: string;
  endedAt: string | null;
  reason: string | null;
  /** When the finished loop's worktree and log were removed (retention or 'ralph rm'). */
  prunedAt: string | null;
  service: string | null;
  /** What the loop runs in; loops of releases before the sandbox ran without one. */
  sandbox: SandboxInfo;
  /** The Unix socket its opencode answers on, while it runs. */
  opencodeSocket: string | null;
  /** Its sandbox's launcher, whose process group holds opencode and everything the agent started. */
  opencodePid: number | null;
  /** The opencode session of the iteration running now: what a restarted daemon reads back what it used from. */
  sessionId: string | null;
  /** Secret: returned only to callers that need to attach. */
  opencodePassword: string | null;
}

export interface StoredEvent {
  seq: number;
  loopId: string;
  event: RecordedEvent;
}

const MIGRATIONS = [
  `CREATE TABLE loops (
     id TEXT PRIMARY KEY, origin TEXT NOT NULL, branch TEXT NOT NULL, taskDir TEXT NOT NULL, worktree TEXT NOT NULL,
     status TEXT NOT NULL, iteration INTEGER NOT NULL DEFAULT 0, storyId TEXT, passed INTEGER NOT NULL DEFAULT 0,
     total INTEGER NOT NULL DEFAULT 0, maxIterations INTEGER NOT NULL, model TEXT, createdAt TEXT NOT NULL,
     updatedAt TEXT NOT NULL, endedAt TEXT, reason TEXT, service TEXT, opencodeUrl TEXT, opencodePid INTEGER,
     opencodePassword TEXT)`,
  `CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, loopId TEXT NOT NULL, event TEXT NOT NULL)`,
  `ALTER TABLE loops ADD COLUMN iterationTimeoutSeconds INTEGER NOT NULL DEFAULT 1800`,
  `ALTER TABLE loops ADD COLUMN stallTimeoutSeconds INTEGER NOT NULL DEFAULT 300;
   ALTER TABLE loops ADD COLUMN maxCostUsd REAL;
   ALTER TABLE loops ADD COLUMN maxTokens INTEGER;
   ALTER TABLE loops ADD COLUMN usage TEXT;
   CREATE TABLE guidance (id INTEGER PRIMARY KEY AUTOINCREMENT, loopId TEXT NOT NULL, text TEXT NOT NULL, createdAt TEXT NOT NULL, deliveredIteration INTEGER);`,
  `ALTER TABLE loops ADD COLUMN prunedAt TEXT;
   CREATE INDEX events_loop ON events (loopId, seq);`,
  `ALTER TABLE loops RENAME COLUMN opencodeUrl TO opencodeSocket;
   ALTER TABLE loops ADD COLUMN sandbox TEXT;
   ALTER TABLE loops ADD COLUMN sessionId TEXT;`,
];

type Columns = Omit<LoopRow, "usage" | "sandbox"> & { usage: string | null; sandbox: string | null };
const fromColumns = (c: Columns): LoopRow => ({
  ...c,
  usage: c.usage ? (JSON.parse(c.usage) as Usage) : emptyUsage(),
  sandbox: c.sandbox ? (JSON.parse(c.sandbox) as SandboxInfo) : { mode: "off" },
});

/** The daemon's state: loops and their event log, in SQLite (WAL) so it survives a kill -9. */
export class Store {
  private readonly db: Database.Database;
  constructor(
    file: string,
    /** Events kept for replay to reconnecting clients. */
    private readonly retainEvents = 50_000,
  ) {
    const fresh = !existsSync(file);
    this.db = new Database(file);
    if (fresh) chmodSync(file, 0o600);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    const version = this.db.pragma("user_version", { simple: true }) as number;
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.exec(MIGRATIONS[v]!);
      this.db.pragma(`user_version = ${v + 1}`);
    }
  }

  close(): void {
    this.db.close();
  }

  /** Folds the write-ahead log into the database and empties it: after a clean-up, the disk it freed is given back. */
  checkpoint(): void {
    this.db.pragma("wal_checkpoint(TRUNCATE)");
  }

  insertLoop(
    row: Pick<LoopRow, "id" | "origin" | "branch" | "taskDir" | "worktree" | "maxIterations" | "iterationTimeoutSeconds" | "stallTimeoutSeconds" | "maxCostUsd" | "maxTokens" | "model" | "sandbox">,
  ): void {
    const now = new Date().toISOString();
    this.db
      .prepare(
        `INSERT INTO loops (id, origin, branch, taskDir, worktree, status, maxIterations, iterationTimeoutSeconds, stallTimeoutSeconds, maxCostUsd, maxTokens, model, sandbox, createdAt, updatedAt)
         VALUES (@id, @origin, @branch, @taskDir, @worktree, 'starting', @maxIterations, @iterationTimeoutSeconds, @stallTimeoutSeconds, @maxCostUsd, @maxTokens, @model, @sandbox, @now, @now)`,
      )
      .run({ ...row, sandbox: JSON.stringify(row.sandbox), now });
  }

  updateLoop(id: string, patch: Partial<Omit<LoopRow, "id" | "createdAt">>): void {
    const keys = Object.keys(patch);
    if (keys.length === 0) return;
    const sets = [...keys.map((k) => `${k} = @${k}`), "updatedAt = @updatedAt"].join(", ");
    const values = { ...patch, ...(patch.usage ? { usage: JSON.stringify(patch.usage) } : {}) };
    this.db.prepare(`UPDATE loops SET ${sets} WHERE id = @id`).run({ ...values, id, updatedAt: new Date().toISOString() });
  }

  getLoop(id: string): LoopRow | undefined {
    const row = this.db.prepare(`SELECT * FROM loops WHERE id = ?`).get(id) as Columns | undefined;
    return row && fromColumns(row);
  }

  listLoops(): LoopRow[] {
    return (this.db.prepare(`SELECT * FROM loops ORDER BY createdAt DESC`).all() as Columns[]).map(fromColumns);
  }

  countLoops(): number {
    return (this.db.prepare(`SELECT COUNT(*) AS n FROM loops`).get() as { n: number }).n;
  }

  activeLoops(): LoopRow[] {
    return (this.db.prepare(`SELECT * FROM loops WHERE status IN ('starting', 'running')`).all() as Columns[]).map(fromColumns);
  }

  /** Finished loops that ended before `cutoff` (ISO time) and still have their worktree. */
  prunable(cutoff: string): LoopRow[] {
    return (
      this.db.prepare(`SELECT * FROM loops WHERE status NOT IN ('starting', 'running') AND prunedAt IS NULL AND COALESCE(endedAt, updatedAt) <= ?`).all(cutoff) as Columns[]
    ).map(fromColumns);
  }

  /** Origins whose mirror a loop still needs: running, or finished with its worktree kept. */
  originsInUse(): Set<string> {
    return new Set((this.db.prepare(`SELECT DISTINCT origin FROM loops WHERE prunedAt IS NULL`).all() as { origin: string }[]).map((r) => r.origin));
  }

  /** Forgets a loop: its row, events and guidance. */
  deleteLoop(id: string): void {
    this.db.transaction(() => {
      for (const table of ["events", "guidance"]) this.db.prepare(`DELETE FROM ${table} WHERE loopId = ?`).run(id);
      this.db.prepare(`DELETE FROM loops WHERE id = ?`).run(id);
    })();
  }

  /** Queues the owner's guidance for a loop's next iteration; returns how many notes are pending. */
  addGuidance(loopId: string, text: string): number {
    this.db.prepare(`INSERT INTO guidance (loopId, text, createdAt) VALUES (?, ?, ?)`).run(loopId, text, new Date().toISOString());
    return (this.db.prepare(`SELECT COUNT(*) AS n FROM guidance WHERE loopId = ? AND deliveredIteration IS NULL`).get(loopId) as { n: number }).n;
  }

  /** The pending guidance, oldest first, marked as delivered in `iteration` so that it is given once. */
  takeGuidance(loopId: string, iteration: number): string[] {
    return this.db.transaction(() => {
      const rows = this.db.prepare(`SELECT id, text FROM guidance WHERE loopId = ? AND deliveredIteration IS NULL ORDER BY id`).all(loopId) as { id: number; text: string }[];
      const mark = this.db.prepare(`UPDATE guidance SET deliveredIteration = ? WHERE id = ?`);
      for (const r of rows) mark.run(iteration, r.id);
      return rows.map((r) => r.text);
    })();
  }

  appendEvent(loopId: string, event: StoredEvent["event"]): number {
    const { lastInsertRowid } = this.db.prepare(`INSERT INTO events (loopId, event) VALUES (?, ?)`).run(loopId, JSON.stringify(event));
    const seq = Number(lastInsertRowid);
    if (seq % 1000 === 0) this.db.prepare(`DELETE FROM events WHERE seq <= ?`).run(seq - this.retainEvents);
    return seq;
  }

  /** Events after `seq` (optionally of one loop), oldest first. */
  eventsAfter(seq: number, loopId?: string, limit = 1000): StoredEvent[] {
    const rows = (loopId
      ? this.db.prepare(`SELECT * FROM events WHERE seq > ? AND loopId = ? ORDER BY seq LIMIT ?`).all(seq, loopId, limit)
      : this.db.prepare(`SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?`).all(seq, limit)) as { seq: number; loopId: string; event: string }[];
    return rows.map((r) => ({ seq: r.seq, loopId: r.loopId, event: JSON.parse(r.event) as StoredEvent["event"] }));
  }

  /** The newest seq, 0 before the first event: no stream position may lie beyond it. */
  newestSeq(): number {
    return ((this.db.prepare(`SELECT MAX(seq) AS s FROM events`).get() as { s: number | null }).s ?? 0);
  }

  /** The oldest seq still kept: a client asking for older ones has missed events. */
  oldestSeq(): number {
    return ((this.db.prepare(`SELECT MIN(seq) AS s FROM events`).get() as { s: number | null }).s ?? 0);
  }
}
