import { ControlClient } from "../../src/client/connection.js";
import { streamEvents } from "../../src/client/events.js";
import type { StreamEvent } from "../../src/contract/events.js";
import type { AgentAnswer } from "../../src/client/agent/protocol.js";
import { ralph } from "./daemon-harness.js";

/**
 * A request the typed client would not send (a hostile body, a wrong
 * method), through the same overlay path; the answer's status and JSON.
 */
export async function raw(client: ControlClient, method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<{ status: number; json: any }> {
  const res = await client.fetch(`${client.baseUrl}${path}`, { method, headers: body === undefined ? headers : { "content-type": "application/json", ...headers }, body });
  return { status: res.status, json: await res.json().catch(() => undefined) };
}

export type AgentStatus = { running: false } | ({ running: true } & NonNullable<Extract<AgentAnswer, { ok: true }>["status"]>);

/** `ralph agent status --json` in a RALPH_HOME. */
export async function agentStatus(home: string): Promise<AgentStatus> {
  const r = await ralph(home, ["agent", "status", "--json"]);
  if (r.code !== 0) throw new Error(`ralph agent status failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as AgentStatus;
}

/** Every event of one loop that the daemon (of RALPH_HOME) has so far. */
export async function eventsOf(id: string): Promise<StreamEvent[]> {
  const events: StreamEvent[] = [];
  const client = await ControlClient.open();
  try {
    await streamEvents(client, { loopId: id, follow: false, onEvent: (e) => events.push(e) });
  } finally {
    await client.close();
  }
  return events;
}
