/**
 * Signals handed to upstream calls: a signal that lives as long as the process (the shutdown
 * signal every JSON request passes on) must not gather anything per call. With
 * `AbortSignal.any()` it kept one dependant per request for the life of the process
 * (nodejs/node#55351, #64476): the memory soak's RSS rose ~7 MB a minute.
 */
import { getEventListeners } from "node:events";
import { follow } from "../../app/src/llm/signals";
import { ResilientProvider } from "../../app/src/llm/resilient";
import type {
  CallOptions,
  LlmProvider,
  MessageRequest,
  MessageResponse,
  StreamEvent,
} from "../../app/src/llm/types";
import { UpstreamError } from "../../app/src/llm/types";

/** What a source signal still holds on behalf of signals made from it: listeners and dependants. */
function heldBy(signal: AbortSignal): number {
  const dependants = Object.getOwnPropertySymbols(signal).find(
    (s) => s.description === "kDependantSignals",
  );
  const set = dependants ? (signal as unknown as Record<symbol, Set<unknown>>)[dependants] : null;
  return getEventListeners(signal, "abort").length + (set?.size ?? 0);
}

const request: MessageRequest = {
  model: "claude-haiku-4-5",
  max_tokens: 16,
  messages: [{ role: "user", content: "hi" }],
};

/** An upstream that answers at once and remembers the signal of each call. */
class Recording implements LlmProvider {
  readonly synthetic = false;
  readonly signals: AbortSignal[] = [];
  async createMessage(_: MessageRequest, options?: CallOptions): Promise<MessageResponse> {
    this.signals.push(options!.signal!);
    return {
      id: "msg_1",
      model: request.model,
      usage: { input_tokens: 1, output_tokens: 1 },
    } as never;
  }
  async *streamMessage(_: MessageRequest, options?: CallOptions): AsyncIterable<StreamEvent> {
    const signal = options!.signal!;
    this.signals.push(signal);
    for (let i = 0; i < 3; i++) {
      if (signal.aborted) throw signal.reason;
      yield { type: "ping" } as never;
      await new Promise((r) => setImmediate(r));
    }
  }
}

describe("follow", () => {
  it("aborts the target with the source's reason, then holds nothing on the source", () => {
    const source = new AbortController();
    const target = new AbortController();
    follow(source.signal, target);
    expect(heldBy(source.signal)).toBe(1);
    source.abort(new Error("shutting down"));
    expect((target.signal.reason as Error).message).toBe("shutting down");
    expect(heldBy(source.signal)).toBe(0);
  });

  it("lets go of the source when cut, the target aborting on its own terms", () => {
    const source = new AbortController();
    const target = new AbortController();
    const cut = follow(source.signal, target);
    cut();
    cut();
    expect(heldBy(source.signal)).toBe(0);
    source.abort();
    expect(target.signal.aborted).toBe(false);
    target.abort("deadline");
    expect(target.signal.reason).toBe("deadline");
  });

  it("aborts the target at once when the source already is", () => {
    const source = new AbortController();
    source.abort("gone");
    const target = new AbortController();
    follow(source.signal, target);
    expect(target.signal.reason).toBe("gone");
  });
});

describe("ResilientProvider with a signal that lives as long as the process (nodejs/node#55351)", () => {
  let provider: ResilientProvider;
  afterEach(() => provider.close());

  it("keeps nothing on it once JSON calls and streams have ended", async () => {
    const upstream = new Recording();
    provider = new ResilientProvider(upstream);
    const stopping = new AbortController().signal;
    for (let i = 0; i < 200; i++) await provider.createMessage(request, { signal: stopping });
    for (let i = 0; i < 20; i++) {
      for await (const event of provider.streamMessage(request, { signal: stopping })) void event;
    }
    // A consumer that stops after the first event closes the stream early: the link goes too.
    for (let i = 0; i < 20; i++) {
      for await (const event of provider.streamMessage(request, { signal: stopping })) {
        void event;
        break;
      }
    }
    expect(upstream.signals).toHaveLength(240);
    expect(heldBy(stopping)).toBe(0);
  });

  it("a failed call lets go of it too", async () => {
    const failing: LlmProvider = {
      synthetic: false,
      createMessage: () =>
        Promise.reject(new UpstreamError(400, "invalid_request_error", "bad request")),
      streamMessage: () => {
        throw new Error("unused");
      },
    };
    provider = new ResilientProvider(failing);
    const stopping = new AbortController().signal;
    for (let i = 0; i < 5; i++) {
      await expect(provider.createMessage(request, { signal: stopping })).rejects.toThrow();
    }
    expect(heldBy(stopping)).toBe(0);
  });

  it("a stream still follows it after its first event, until the stream ends", async () => {
    const upstream = new Recording();
    provider = new ResilientProvider(upstream);
    const caller = new AbortController();
    const it = provider.streamMessage(request, { signal: caller.signal })[Symbol.asyncIterator]();
    await it.next();
    const upstreamSignal = upstream.signals[0]!;
    expect(upstreamSignal.aborted).toBe(false);
    caller.abort(new Error("client left"));
    expect(upstreamSignal.aborted).toBe(true);
    await expect(it.next()).rejects.toThrow("client left");
  });
});
