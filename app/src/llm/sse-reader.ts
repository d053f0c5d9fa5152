/**
 * An upstream's SSE body read straight from the socket's Node stream, parsed by eventsource-parser
 * (spec-conformant: CR, LF and CRLF line ends, multi-line data, comments, a BOM), one array of
 * events per chunk read: events that arrived together cost one await. Against the SDK's reader
 * over a web stream (`Readable.toWeb` + `Stream.rawEvents`) this spares a web stream, a
 * TextDecoder stream and several promises per event. A module of its own so that the Lambda
 * bundles, which read through the SDK, leave it and eventsource-parser out.
 */
import type { Readable } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import { createParser, type EventSourceMessage } from "eventsource-parser";
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

/** As the SDK's own iterator: a message without a name or data carries nothing. */
export function carries(sse: SseMessage): boolean {
  return sse.event !== null && Boolean(sse.data);
}

/** The last message of a batch that carries something: the last event a reader yields from it. */
export function lastCarrying(batch: readonly SseMessage[]): SseMessage | undefined {
  for (let i = batch.length - 1; i >= 0; i--) if (carries(batch[i]!)) return batch[i];
  return undefined;
}
