import { EventSourceParserStream, type EventSourceMessage } from "eventsource-parser/stream";

export type { EventSourceMessage };

/** The messages of a server-sent event stream, parsed by eventsource-parser. */
export function sseMessages(body: ReadableStream<Uint8Array>): AsyncIterable<EventSourceMessage> {
  return body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream()) as unknown as AsyncIterable<EventSourceMessage>;
}
