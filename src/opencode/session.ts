import { createOpencodeClient, type OpencodeClient } from "@opencode-ai/sdk";
import { basicAuth, type OpencodeServer } from "./server.js";

export type TurnResult = { kind: "idle" } | { kind: "error"; message: string } | { kind: "timeout" } | { kind: "server-exited" } | { kind: "aborted" };

export interface ToolActivity {
  tool: string;
  status: string;
  title?: string;
}

export interface TurnOptions {
  prompt: string;
  /** "provider/model"; omitted: the repo's opencode config or opencode's default. */
  model?: string;
  timeoutMs: number;
  /** How long the turn may take to show that it started (busy). */
  startTimeoutMs?: number;
  signal?: AbortSignal;
  onSession?: (sessionId: string) => void;
  onTool?: (t: ToolActivity) => void;
}

export const clientFor = (server: OpencodeServer): OpencodeClient =>
  createOpencodeClient({ baseUrl: server.url, headers: { authorization: basicAuth(server.username, server.password) } });

interface EventLike {
  type: string;
  properties?: Record<string, unknown>;
}

/**
 * One agent turn in a fresh session: subscribe to events first (so nothing is
 * missed), send the prompt asynchronously, then wait for the session's idle
 * status. A turn that never shows `busy` is treated as never started.
 */
export async function runTurn(server: OpencodeServer, opts: TurnOptions): Promise<TurnResult> {
  // A stop that came while the server was starting must not be missed:
  // abort listeners never fire for a signal that is already aborted.
  if (opts.signal?.aborted) return { kind: "aborted" };
  const client = clientFor(server);
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const events = await client.event.subscribe({ signal: stop.signal });
    const created = await client.session.create({ body: { title: "Ralph iteration" } });
    if (!created.data) return { kind: "error", message: `could not create an opencode session: ${JSON.stringify(created.error)}` };
    const sid = created.data.id;
    opts.onSession?.(sid);
    const model = parseModel(opts.model);
    const sent = await client.session.promptAsync({ path: { id: sid }, body: { parts: [{ type: "text", text: opts.prompt }], ...(model ? { model } : {}) } });
    if (sent.error || !sent.response.ok) return { kind: "error", message: `opencode refused the prompt (HTTP ${sent.response.status}): ${JSON.stringify(sent.error)}` };

    const seenTools = new Set<string>();
    let started = false;
    let error: string | undefined;
    const watch = (async (): Promise<TurnResult> => {
      for await (const raw of events.stream as AsyncIterable<EventLike>) {
        const p = raw.properties ?? {};
        if (p.sessionID !== sid && (p.part as { sessionID?: string } | undefined)?.sessionID !== sid) continue;
        if (raw.type === "session.status") {
          const type = (p.status as { type?: string } | undefined)?.type;
          if (type === "busy" || type === "retry") started = true;
          if (type === "idle") return error ? { kind: "error", message: error } : { kind: "idle" };
        } else if (raw.type === "session.error") {
          const e = p.error as { name?: string; data?: { message?: string } } | undefined;
          error = `${e?.name ?? "error"}: ${e?.data?.message ?? "unknown"}`;
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
    const timers: NodeJS.Timeout[] = [];
    const timeout = new Promise<TurnResult>((resolveTimeout) => {
      timers.push(setTimeout(() => resolveTimeout({ kind: "timeout" }), opts.timeoutMs));
      timers.push(
        setTimeout(() => {
          if (!started) resolveTimeout({ kind: "error", message: `the turn did not start within ${startTimeoutMs / 1000}s of sending the prompt` });
        }, startTimeoutMs),
      );
    });
    const died = server.exited.then((): TurnResult => ({ kind: "server-exited" }));
    const aborted = new Promise<TurnResult>((resolveAbort) => {
      if (stop.signal.aborted) resolveAbort({ kind: "aborted" });
      else stop.signal.addEventListener("abort", () => resolveAbort({ kind: "aborted" }), { once: true });
    });
    const result = await Promise.race([watch.catch((): TurnResult => (server.alive() ? { kind: "error", message: "event stream failed" } : { kind: "server-exited" })), timeout, died, aborted]);
    timers.forEach(clearTimeout);
    if (result.kind !== "idle" && result.kind !== "server-exited" && server.alive()) {
      // Leave nothing running in the session we give up on.
      await client.session.abort({ path: { id: sid } }).catch(() => undefined);
    }
    return result;
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
    stop.abort();
  }
}

export function parseModel(model: string | undefined): { providerID: string; modelID: string } | undefined {
  if (!model) return undefined;
  const slash = model.indexOf("/");
  if (slash <= 0 || slash === model.length - 1) throw new Error(`model "${model}" must be written provider/model, e.g. anthropic/claude-sonnet-4`);
  return { providerID: model.slice(0, slash), modelID: model.slice(slash + 1) };
}
