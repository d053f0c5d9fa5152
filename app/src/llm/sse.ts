/**
 * Server-sent events on the hot path of a stream, without web streams and without re-encoding:
 *
 * - `readSse` reads an upstream's SSE body straight from the Node socket stream, parsed by
 *   eventsource-parser (spec-conformant: CR, LF and CRLF line ends, multi-line data, comments,
 *   a BOM), one array of events per chunk read: events that arrived together cost one await.
 *   Against the SDK's reader over a web stream (`Readable.toWeb` + `Stream.rawEvents`) this
 *   spares a web stream, a TextDecoder stream and several promises per event.
 * - `sseFrame` writes an event for the client. An event parsed from the upstream keeps the text
 *   of its `data:` line (`keepWireData`), and its frame is that text again rather than
 *   `JSON.stringify` of the parsed object: the same JSON, without serialising it a second time.
 *   The text is kept in a WeakMap keyed by the event object, so a changed copy of an event
 *   (`{ ...event, ... }`) has none and is serialised; events are not changed in place.
 */
import type { Readable } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import { createParser, type EventSourceMessage } from "eventsource-parser";
import type { StreamEvent } from "./types";
import { UpstreamError } from "./types";

export interface SseMessage {
  /** The `event:` name, or null when the message had none. */
  event: string | null;
  data: string;
}

/**
 * An SSE event larger than this (its unfinished lines and data) is a broken upstream: the stream
 * fails with a 502 rather than buffer without end. The API's largest events (a message_start
 * echoing a long container, a big tool input delta) are far below it.
 */
export const MAX_SSE_EVENT_BYTES = 16 * 1024 * 1024;

/** The SSE messages of a Node readable, one array per chunk that completed any. */
export async function* readSse(body: Readable): AsyncGenerator<SseMessage[], void, undefined> {
  let batch: SseMessage[] = [];
  let failure: Error | undefined;
  const parser = createParser({
    onEvent(message: EventSourceMessage) {
      batch.push({ event: message.event ?? null, data: message.data });
    },
    onError(error) {
      if (error.type === "max-buffer-size-exceeded")
        failure = new UpstreamError(
          502,
          "api_error",
          `upstream stream sent an event larger than ${MAX_SSE_EVENT_BYTES} bytes`,
          {},
          true,
        );
    },
    maxBufferSize: MAX_SSE_EVENT_BYTES,
  });
  const decoder = new StringDecoder("utf8");
  for await (const chunk of body as AsyncIterable<Buffer | string>) {
    parser.feed(typeof chunk === "string" ? chunk : decoder.write(chunk));
    if (failure) throw failure;
    if (batch.length > 0) {
      const ready = batch;
      batch = [];
      yield ready;
    }
  }
  const rest = decoder.end();
  if (rest) parser.feed(rest);
  // As a browser's EventSource: an event not ended by a blank line when the body ends is dropped.
  if (batch.length > 0) yield batch;
}

const wireData = new WeakMap<object, string>();

/**
 * Remember the `data:` text `event` was parsed from, when it can go out again as it came: one
 * line (a multi-line data field would need splitting again), under the event's own type as its
 * name (the frame's `event:` line is always the type).
 */
export function keepWireData(event: StreamEvent, name: string | null, data: string): void {
  if (name === event.type && !data.includes("\n") && !data.includes("\r"))
    wireData.set(event, data);
}

/** `event` as one SSE frame: its type as the name, its JSON as the data. */
export function sseFrame(event: StreamEvent): string {
  return `event: ${event.type}\ndata: ${wireData.get(event) ?? JSON.stringify(event)}\n\n`;
}
