/**
 * Server-sent events for the client, without re-encoding what the upstream sent (the upstream's
 * are read by sse-reader.ts). `sseFrame` writes an event for the client. An event parsed from the
 * upstream keeps the text of its `data:` line (`keepWireData`), and its frame is that text again
 * rather than `JSON.stringify` of the parsed object: the same JSON, without serialising it a
 * second time. The text is kept in a WeakMap keyed by the event object, so a changed copy of an
 * event (`{ ...event, ... }`) has none and is serialised; events are not changed in place.
 */
import type { StreamEvent } from "./types";

const wireData = new WeakMap<object, string>();

/**
 * Where an event sat in the upstream read that delivered it: true for the last event of that read,
 * false for one with more behind it. A reader that parses each read whole (sdk-provider.ts over
 * sse-reader.ts) marks what it yields; the route then sends the read's events in one write without
 * asking the event loop whether more are coming (messages.ts). Events pass through the other
 * providers' layers as the same objects, so the mark goes with them; a copied event has none.
 */
const readEnds = new WeakMap<object, boolean>();

/**
 * Remember the `data:` text `event` was parsed from, when it can go out again as it came: one
 * line (a multi-line data field would need splitting again), under the event's own type as its
 * name (the frame's `event:` line is always the type).
 */
export function keepWireData(event: StreamEvent, name: string | null, data: string): void {
  if (name === event.type && !data.includes("\n") && !data.includes("\r"))
    wireData.set(event, data);
}

/** Marks `event` as the last of its upstream read (`last`) or as one with more behind it. */
export function markReadPosition(event: StreamEvent, last: boolean): void {
  readEnds.set(event, last);
}

/**
 * True if `event` ended the upstream read that delivered it, false if more events of the same
 * read follow it at once, undefined if nobody marked it (the reader cannot tell).
 */
export function endsRead(event: StreamEvent): boolean | undefined {
  return readEnds.get(event);
}

/** `event` as one SSE frame: its type as the name, its JSON as the data. */
export function sseFrame(event: StreamEvent): string {
  return `event: ${event.type}\ndata: ${wireData.get(event) ?? JSON.stringify(event)}\n\n`;
}
