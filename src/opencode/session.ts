import { createOpencodeClient, type OpencodeClient } from "@opencode-ai/sdk/v2";
import { emptyUsage, type Usage } from "../loop/usage.js";
import { basicAuth, OPENCODE_BASE_URL, type OpencodeServer } from "./server.js";
import { pricedModels, usageOf, type AssistantUsage } from "./usage.js";

/** How a turn ended, before its usage is added. */
export type TurnEnd =
  | { kind: "idle" }
  | { kind: "error"; message: string }
  | { kind: "timeout" }
  | { kind: "server-exited" }
  | { kind: "aborted" }
  /** No event from opencode for the stall timeout. */
  | { kind: "stalled"; idleMs: number }
  /** The caller's `interrupt` signal fired (a budget reached mid-turn). */
  | { kind: "interrupted" };

export type TurnResult = TurnEnd & { usage: Usage };

export interface ToolActivity {
  tool: string;
  status: string;
  title?: string;
}

/** A question or permission request the turn answered on nobody's behalf. */
export interface Asked {
  kind: "question" | "permission";
  text: string;
  answer: string;
}

/** How unattended loops answer permission requests; questions always get NO_HUMAN. */
export type PermissionPolicy = "reject" | "allow";

export const NO_HUMAN =
  "No human is available to answer: this is an unattended loop. Decide for yourself, note the decision in the progress log, and carry on.";

export interface TurnOptions {
  prompt: string;
  /** "provider/model"; omitted: the repo's opencode config or opencode's default. */
  model?: string;
  timeoutMs: number;
  /** How long the turn may take to show that it started (busy). */
  startTimeoutMs?: number;
  /** A turn with no event from opencode for this long is abandoned as stalled. */
  stallTimeoutMs?: number;
  signal?: AbortSignal;
  /** Ends the turn as "interrupted". */
  interrupt?: AbortSignal;
  permissionPolicy?: PermissionPolicy;
  onSession?: (sessionId: string) => void;
  onTool?: (t: ToolActivity) => void;
  /** The turn's usage so far, as opencode updates its messages. */
  onUsage?: (u: Usage) => void;
  onAsked?: (a: Asked) => void;
  /** Off only to measure what accounting costs (the benchmark): usage is then reported empty. */
  accounting?: boolean;
}

export const clientFor = (server: OpencodeServer): OpencodeClient =>
  createOpencodeClient({ baseUrl: OPENCODE_BASE_URL, fetch: server.fetch, headers: { authorization: basicAuth(server.username, server.password) } });

const priceLists = new WeakMap<OpencodeServer, Promise<Set<string>>>();
/** Fetched once per server; a failed fetch is retried next time. */
function pricesOf(server: OpencodeServer, client: OpencodeClient): Promise<Set<string>> {
  let p = priceLists.get(server);
  if (!p) {
    p = pricedModels(client);
    priceLists.set(server, p);
    p.catch(() => priceLists.delete(server));
  }
  return p;
}

/** Questions and commands can be long; an event carries their start. */
const clip = (s: string, max = 1000) => (s.length > max ? `${s.slice(0, max - 1)}…` : s);

interface EventLike {
  type: string;
  properties?: Record<string, unknown>;
}
type Info = { id?: string; sessionID?: string; parentID?: string; role?: string } & Partial<AssistantUsage>;

/** The session an event is about, wherever opencode puts it. */
const sessionOf = (p: Record<string, unknown>): string | undefined =>
  (p.sessionID as string | undefined) ?? (p.part as { sessionID?: string } | undefined)?.sessionID ?? (p.info as Info | undefined)?.sessionID;

const isAssistantUsage = (i: Info): i is Info & AssistantUsage & { id: string } =>
  i.role === "assistant" && typeof i.id === "string" && typeof i.cost === "number" && typeof i.tokens === "object";

/**
 * One agent turn in a fresh session: subscribe to events first (so nothing is
 * missed), send the prompt asynchronously, then wait for the session's idle
 * status. Questions and permission requests are answered at once, since
 * nobody will; a turn that never shows `busy`, or goes quiet, is given up.
 * Sub-agent sessions the turn starts count as part of it.
 */
export async function runTurn(server: OpencodeServer, opts: TurnOptions): Promise<TurnResult> {
  // A stop that came while the server was starting must not be missed:
  // abort listeners never fire for a signal that is already aborted.
  if (opts.signal?.aborted) return { kind: "aborted", usage: emptyUsage() };
  const client = clientFor(server);
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  const ours = new Set<string>();
  const assistant = new Map<string, AssistantUsage>();
  const timers: NodeJS.Timeout[] = [];
  try {
    const accounting = opts.accounting ?? true;
    const prices = accounting ? pricesOf(server, client) : Promise.resolve(new Set<string>());
    const events = await client.event.subscribe(undefined, { signal: stop.signal });
    const created = await client.session.create({ title: "Ralph iteration" });
    if (!created.data) return { kind: "error", message: `could not create an opencode session: ${JSON.stringify(created.error)}`, usage: emptyUsage() };
    const sid = created.data.id;
    ours.add(sid);
    opts.onSession?.(sid);
    const model = parseModel(opts.model);
    const sent = await client.session.promptAsync({ sessionID: sid, parts: [{ type: "text", text: opts.prompt }], ...(model ? { model } : {}) });
    if (sent.error || !sent.response.ok) {
      return { kind: "error", message: `opencode refused the prompt (HTTP ${sent.response.status}): ${JSON.stringify(sent.error)}`, usage: emptyUsage() };
    }
    const priced = await prices.catch(() => new Set<string>());
    const usageSoFar = () => usageOf([...assistant.values()], priced);

    const answer = async (raw: EventLike, p: Record<string, unknown>): Promise<void> => {
      const requestID = p.id as string;
      if (raw.type === "question.asked") {
        const questions = (p.questions as { question?: string }[] | undefined) ?? [];
        await client.question.reply({ requestID, answers: questions.map(() => [NO_HUMAN]) });
        opts.onAsked?.({ kind: "question", text: clip(questions.map((q) => q.question ?? "").join(" / ")), answer: NO_HUMAN });
      } else {
        const allow = opts.permissionPolicy === "allow";
        await client.permission.reply({ requestID, reply: allow ? "once" : "reject", ...(allow ? {} : { message: NO_HUMAN }) });
        const patterns = (p.patterns as string[] | undefined) ?? [];
        opts.onAsked?.({ kind: "permission", text: clip([String(p.permission ?? "permission"), ...patterns].join(" ")), answer: allow ? "allowed once" : `rejected: ${NO_HUMAN}` });
      }
    };

    const seenTools = new Set<string>();
    let started = false;
    let error: string | undefined;
    let lastActivity = Date.now();
    const watch = (async (): Promise<TurnEnd> => {
      for await (const raw of events.stream as AsyncIterable<EventLike>) {
        const p = raw.properties ?? {};
        const info = p.info as Info | undefined;
        if ((raw.type === "session.created" || raw.type === "session.updated") && info?.id && info.parentID && ours.has(info.parentID)) ours.add(info.id);
        const session = sessionOf(p);
        if (!session || !ours.has(session)) continue;
        lastActivity = Date.now();
        if (raw.type === "session.status") {
          if (session !== sid) continue;
          const type = (p.status as { type?: string } | undefined)?.type;
          if (type === "busy" || type === "retry") started = true;
          if (type === "idle") return error ? { kind: "error", message: error } : { kind: "idle" };
        } else if (raw.type === "session.error" && session === sid) {
          const e = p.error as { name?: string; data?: { message?: string } } | undefined;
          error = `${e?.name ?? "error"}: ${e?.data?.message ?? "unknown"}`;
        } else if (raw.type === "message.updated" && accounting && info && isAssistantUsage(info)) {
          assistant.set(info.id, info);
          opts.onUsage?.(usageSoFar());
        } else if (raw.type === "question.asked" || raw.type === "permission.asked") {
          // Answered in the background; a failure to answer surfaces as a stall.
          void answer(raw, p).catch(() => undefined);
        } else if (raw.type === "message.part.updated") {
          const part = p.part as { type?: string; tool?: string; callID?: string; state?: { status?: string; title?: string } };
          if (part.type === "tool" && part.tool && part.state?.status) {
            const key = `${part.callID}:${part.state.status}`;
            if (!seenTools.has(key)) {
              seenTools.add(key);
              opts.onTool?.({ tool: part.tool, status: part.state.status, title: part.state.title });
            }
          }
        }
      }
      return stop.signal.aborted ? { kind: "aborted" } : { kind: "server-exited" };
    })();

    const startTimeoutMs = opts.startTimeoutMs ?? 60_000;
    const stallMs = opts.stallTimeoutMs ?? Number.POSITIVE_INFINITY;
    const timeout = new Promise<TurnEnd>((resolveTimeout) => {
      timers.push(setTimeout(() => resolveTimeout({ kind: "timeout" }), opts.timeoutMs));
      timers.push(
        setTimeout(() => {
          if (!started) resolveTimeout({ kind: "error", message: `the turn did not start within ${startTimeoutMs / 1000}s of sending the prompt` });
        }, startTimeoutMs),
      );
      if (Number.isFinite(stallMs)) {
        const check = Math.min(5000, Math.max(50, stallMs / 10));
        timers.push(
          setInterval(() => {
            const idle = Date.now() - lastActivity;
            if (idle >= stallMs) resolveTimeout({ kind: "stalled", idleMs: idle });
          }, check),
        );
      }
    });
    const died = server.exited.then((): TurnEnd => ({ kind: "server-exited" }));
    const ended = (signal: AbortSignal | undefined, end: TurnEnd) =>
      new Promise<TurnEnd>((resolveEnd) => {
        if (!signal) return;
        if (signal.aborted) resolveEnd(end);
        else signal.addEventListener("abort", () => resolveEnd(end), { once: true });
      });
    const result = await Promise.race([
      watch.catch((): TurnEnd => (server.alive() ? { kind: "error", message: "event stream failed" } : { kind: "server-exited" })),
      timeout,
      died,
      ended(stop.signal, { kind: "aborted" }),
      ended(opts.interrupt, { kind: "interrupted" }),
    ]);
    timers.forEach(clearTimeout);
    timers.length = 0;
    if (result.kind !== "idle" && result.kind !== "server-exited" && server.alive()) {
      // Leave nothing running in the session we give up on.
      await client.session.abort({ sessionID: sid }).catch(() => undefined);
    }
    return { ...result, usage: accounting && server.alive() ? await finalUsage(client, ours, priced).catch(usageSoFar) : usageSoFar() };
  } finally {
    timers.forEach(clearTimeout);
    opts.signal?.removeEventListener("abort", onAbort);
    stop.abort();
  }
}

/**
 * What a session and the sub-agent sessions it started used, after stopping
 * it: the iteration a restarted daemon interrupted, read back exactly.
 */
export async function sessionUsage(server: OpencodeServer, sessionID: string): Promise<Usage> {
  const client = clientFor(server);
  await client.session.abort({ sessionID });
  const all = (await client.session.list()).data ?? [];
  const ours = new Set([sessionID]);
  // Children after their parents or not: grow the set until it holds still.
  for (let grew = true; grew; ) {
    grew = false;
    for (const s of all) if (s.parentID && ours.has(s.parentID) && !ours.has(s.id)) (ours.add(s.id), (grew = true));
  }
  return finalUsage(client, ours, await pricesOf(server, client).catch(() => new Set<string>()));
}

/** The turn's usage from opencode's stored messages: exact, whatever events were missed. */
async function finalUsage(client: OpencodeClient, sessions: Set<string>, priced: Set<string>): Promise<Usage> {
  const all: AssistantUsage[] = [];
  for (const sessionID of sessions) {
    const res = await client.session.messages({ sessionID });
    if (!res.data) throw new Error("no messages");
    for (const m of res.data) if (m.info.role === "assistant") all.push(m.info);
  }
  return usageOf(all, priced);
}

export function parseModel(model: string | undefined): { providerID: string; modelID: string } | undefined {
  if (!model) return undefined;
  const slash = model.indexOf("/");
  if (slash <= 0 || slash === model.length - 1) throw new Error(`model "${model}" must be written provider/model, e.g. anthropic/claude-sonnet-4`);
  return { providerID: model.slice(0, slash), modelID: model.slice(slash + 1) };
}
