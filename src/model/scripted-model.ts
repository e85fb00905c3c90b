import { createServer, type IncomingMessage, type ServerResponse, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import { PRD_MARKER } from "../loop/prompt.js";

/**
 * A small OpenAI-compatible model server with scripted behaviour. It drives a
 * real opencode offline: tests use it, and `ralph demo` uses it as a clearly
 * labelled demo model when the user has none configured.
 */
export const ModelScriptSchema = z.discriminatedUnion("kind", [
  /**
   * Implements the next story of the PRD named in the prompt with one real
   * bash tool call. `askFirst`: calls opencode's question tool before that,
   * as real models do. `hangAfterTool`: never answers after the bash call.
   */
  z.object({
    kind: z.literal("ralph-agent"),
    askFirst: z.boolean().optional(),
    hangAfterTool: z.boolean().optional(),
    /** A shell command the agent runs first in every turn, before the story's: a prompt-injected agent's attack, say. */
    first: z.string().optional(),
    /** Only in turns whose prompt holds this text (e.g. one task dir's path): other loops on the same model stay well-behaved. */
    firstWhen: z.string().optional(),
  }),
  /** Answers in words and changes nothing: a loop on it never finishes. */
  z.object({ kind: z.literal("idle") }),
  /** Answers every request with an HTTP error. */
  z.object({ kind: z.literal("error"), status: z.number().int().min(400).max(599).default(400) }),
  /** Accepts requests and never answers (until the script changes or the server closes). */
  z.object({ kind: z.literal("hang") }),
  /** A fixed text answer. */
  z.object({ kind: z.literal("reply"), text: z.string() }),
]);
export type ModelScript = z.input<typeof ModelScriptSchema>;

export interface ScriptedModel {
  /** OpenAI base URL, e.g. http://127.0.0.1:PORT/v1 */
  baseUrl: string;
  port: number;
  requestCount(): number;
  /** The user prompts of the agent turns it answered, oldest first. */
  prompts(): string[];
  /** What the agent's tool calls returned, as opencode sent it back, oldest first (each once). */
  toolOutputs(): string[];
  /** Every request body it received, as sent: what an agent could exfiltrate through its model. */
  received(): string;
  setScript(script: ModelScript): void;
  close(): Promise<void>;
}

interface ChatMessage {
  role: string;
  content?: unknown;
  tool_call_id?: string;
  tool_calls?: { function?: { name?: string } }[];
}
interface ChatRequest {
  model?: string;
  stream?: boolean;
  messages?: ChatMessage[];
  tools?: unknown[];
}


const textOf = (content: unknown): string => {
  if (typeof content === "string") return content;
  if (Array.isArray(content))
    return content.map((p) => (typeof p === "object" && p && "text" in p ? String((p as { text: unknown }).text) : "")).join("\n");
  return "";
};

/**
 * The shell command the scripted agent runs: it does what the loop prompt asks
 * of a real agent, for the highest-priority unblocked story that does not pass.
 */
export function storyScript(prdFile: string): string {
  const program = `
const fs = require("fs"), path = require("path"), cp = require("child_process");
const prdFile = ${JSON.stringify(prdFile)};
const prd = JSON.parse(fs.readFileSync(prdFile, "utf8"));
const passed = new Set(prd.userStories.filter((s) => s.passes).map((s) => s.id));
const story = prd.userStories
  .filter((s) => !s.passes && (s.blockedBy || []).every((b) => passed.has(b)))
  .sort((a, b) => (a.priority ?? 100) - (b.priority ?? 100))[0];
if (!story) { console.log("nothing left to do"); process.exit(0); }
const root = cp.execFileSync("git", ["rev-parse", "--show-toplevel"], { cwd: path.dirname(prdFile) }).toString().trim();
const out = path.join(root, "stories", story.id + ".md");
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, "# " + story.title + "\\n\\n" + (story.description || "") + "\\n");
story.passes = true;
story.acceptanceCriteria = (story.acceptanceCriteria || []).map((c) => (typeof c === "string" ? c : { ...c, passes: true }));
fs.writeFileSync(prdFile, JSON.stringify(prd, null, 2) + "\\n");
fs.appendFileSync(path.join(path.dirname(prdFile), "progress.txt"), "## " + story.id + ": implemented by the scripted demo model\\n");
cp.execFileSync("git", ["add", "-A"], { cwd: root });
cp.execFileSync("git", ["commit", "-q", "-m", "feat: [" + story.id + "] - " + story.title], { cwd: root });
console.log("implemented " + story.id);
`;
  return `node <<'RALPH_SCRIPTED_EOF'\n${program}\nRALPH_SCRIPTED_EOF`;
}

type Answer = { text: string } | { toolCall: { name: string; args: Record<string, unknown> } } | "hang";

/** The question the scripted agent asks when told to (`askFirst`). */
export const SCRIPTED_QUESTION = "Which test framework should the project use?";

const userPrompt = (messages: ChatMessage[]): string =>
  messages
    .filter((m) => m.role === "user")
    .map((m) => textOf(m.content))
    .join("\n");

function answerFor(script: z.output<typeof ModelScriptSchema>, req: ChatRequest): Answer {
  const messages = req.messages ?? [];
  const last = messages[messages.length - 1];
  // Requests without tools are opencode's own (titles, summaries).
  if (!req.tools?.length) return { text: "Ralph iteration" };
  if (script.kind === "reply") return { text: script.text };
  if (script.kind === "idle") return { text: "I looked at the task and will continue later." };
  if (script.kind !== "ralph-agent") return "hang";
  // ralph-agent: (ask,) act once on the user's prompt, then report after the tool result.
  const lastTool = messages.findLast((m) => m.role === "assistant" && m.tool_calls?.length)?.tool_calls?.[0]?.function?.name;
  const bashCalls = messages.filter((m) => m.role === "assistant" && m.tool_calls?.[0]?.function?.name === "bash").length;
  if (last?.role === "user" && script.askFirst) {
    return {
      toolCall: {
        name: "question",
        args: { questions: [{ question: SCRIPTED_QUESTION, header: "Test framework", options: [{ label: "vitest", description: "fast" }, { label: "jest", description: "common" }] }] },
      },
    };
  }
  const first = script.first !== undefined && (script.firstWhen === undefined || userPrompt(messages).includes(script.firstWhen)) ? script.first : undefined;
  if (first !== undefined && bashCalls === 0) return { toolCall: { name: "bash", args: { command: first, description: "Look around first" } } };
  if (last?.role === "tool" && lastTool === "bash" && bashCalls >= (first !== undefined ? 2 : 1)) {
    return script.hangAfterTool ? "hang" : { text: "Implemented the story, committed it and marked it as passing." };
  }
  const match = new RegExp(`${PRD_MARKER}\\s*(\\S+)`).exec(userPrompt(messages));
  if (!match) return { text: `I cannot find the PRD: the prompt has no '${PRD_MARKER}' line.` };
  return { toolCall: { name: "bash", args: { command: storyScript(match[1]!), description: "Implement the next story" } } };
}

export async function startScriptedModel(opts: { port?: number; script: ModelScript }): Promise<ScriptedModel> {
  let script = ModelScriptSchema.parse(opts.script);
  let requests = 0;
  let callSeq = 0;
  const prompts: string[] = [];
  const toolOutputs = new Map<string, string>();
  const bodies: string[] = [];
  const hanging = new Set<ServerResponse>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = req.url ?? "/";
    if (req.method === "GET" && url.endsWith("/models")) {
      return json(res, 200, { object: "list", data: [{ id: "scripted", object: "model", owned_by: "ralph" }] });
    }
    if (req.method !== "POST" || !url.endsWith("/chat/completions")) return json(res, 404, { error: { message: "not found" } });
    requests++;
    const raw = await readBody(req);
    bodies.push(raw);
    const body = JSON.parse(raw || "{}") as ChatRequest;
    for (const m of body.messages ?? []) if (m.role === "tool" && m.tool_call_id && !toolOutputs.has(m.tool_call_id)) toolOutputs.set(m.tool_call_id, textOf(m.content));
    if (script.kind === "error") {
      return json(res, script.status, { error: { message: "scripted model error", type: "invalid_request_error" } });
    }
    const messages = body.messages ?? [];
    if (body.tools?.length && messages.at(-1)?.role === "user") prompts.push(userPrompt(messages));
    const answer = answerFor(script, body);
    if (answer === "hang") {
      hanging.add(res);
      res.on("close", () => hanging.delete(res));
      return;
    }
    const id = `chatcmpl-${++callSeq}`;
    const created = Math.floor(Date.now() / 1000);
    const model = body.model ?? "scripted";
    const finish = "text" in answer ? "stop" : "tool_calls";
    if (!body.stream) {
      const message =
        "text" in answer
          ? { role: "assistant", content: answer.text }
          : { role: "assistant", content: null, tool_calls: [toolCall(answer.toolCall, callSeq)] };
      return json(res, 200, {
        id,
        object: "chat.completion",
        created,
        model,
        choices: [{ index: 0, message, finish_reason: finish }],
        usage: SCRIPTED_USAGE,
      });
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    const send = (choices: unknown[], extra: object = {}) =>
      res.write(`data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model, choices, ...extra })}\n\n`);
    send([{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }]);
    const delta = "text" in answer ? { content: answer.text } : { tool_calls: [{ index: 0, ...toolCall(answer.toolCall, callSeq) }] };
    send([{ index: 0, delta, finish_reason: null }]);
    send([{ index: 0, delta: {}, finish_reason: finish }]);
    send([], { usage: SCRIPTED_USAGE });
    res.end("data: [DONE]\n\n");
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => json(res, 500, { error: { message: String(err) } }));
  });
  await new Promise<void>((resolveListen, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => resolveListen());
  });
  const port = (server.address() as AddressInfo).port;
  const releaseHanging = () => {
    for (const r of hanging) r.destroy();
    hanging.clear();
  };
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    port,
    requestCount: () => requests,
    prompts: () => [...prompts],
    toolOutputs: () => [...toolOutputs.values()],
    received: () => bodies.join("\n"),
    setScript(s) {
      script = ModelScriptSchema.parse(s);
      releaseHanging();
    },
    close: () =>
      new Promise<void>((resolveClose) => {
        releaseHanging();
        server.closeAllConnections();
        server.close(() => resolveClose());
      }),
  };
}

/**
 * What every answer reports using, as an OpenAI-compatible server does.
 * opencode counts it as input 700, output 150, reasoning 50, cache read 300.
 */
export const SCRIPTED_USAGE = {
  prompt_tokens: 1000,
  completion_tokens: 200,
  total_tokens: 1200,
  prompt_tokens_details: { cached_tokens: 300 },
  completion_tokens_details: { reasoning_tokens: 50 },
};

function toolCall(call: { name: string; args: Record<string, unknown> }, seq: number) {
  return { id: `call_${seq}`, type: "function", function: { name: call.name, arguments: JSON.stringify(call.args) } };
}

function json(res: ServerResponse, status: number, value: unknown): void {
  if (res.headersSent) return void res.end();
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(value));
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolveBody, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolveBody(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}
