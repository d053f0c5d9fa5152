/**
 * Abuse suite, item 12: LOG_PROMPTS does what it says. On, each answer gets one log line with
 * its prompt and completion (messages, streams and session turns); off (the default), no prompt
 * or completion text reaches any log line, at any level.
 */
import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import pino from "pino";
import { openRig, QUIET, until, type AbuseRig } from "../support/abuse";
import { serviceBackends } from "../support/services";

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split("\n")) if (l.trim()) lines.push(JSON.parse(l));
      done();
    },
  });
  return { lines, logger: pino({ level: "trace" }, stream) };
}

describe.each(serviceBackends())("abuse: LOG_PROMPTS with $name", (backend) => {
  let on: AbuseRig;
  let off: AbuseRig;
  const onLogs = capture();
  const offLogs = capture();
  beforeAll(async () => {
    on = await openRig(
      backend,
      { ...QUIET, LOG_PROMPTS: "true", LOG_LEVEL: "trace" },
      { deps: { logger: onLogs.logger } },
    );
    off = await openRig(
      backend,
      { ...QUIET, LOG_LEVEL: "trace" },
      { deps: { logger: offLogs.logger } },
    );
  });
  afterAll(async () => {
    await on?.close();
    await off?.close();
  });

  const ask = (rig: AbuseRig, phrase: string, stream: boolean) =>
    rig.post("/v1/messages", {
      model: "claude-haiku-4-5",
      max_tokens: 64,
      stream,
      messages: [{ role: "user", content: `remember ${phrase}` }],
    });
  const turn = async (rig: AbuseRig, phrase: string) => {
    const s = (await (await rig.post("/v1/sessions", { model: "claude-haiku-4-5" })).json()) as {
      id: string;
    };
    return rig.post(`/v1/sessions/${s.id}/messages`, { content: `remember ${phrase}` });
  };

  it.each([
    ["a JSON answer", (r: AbuseRig, p: string) => ask(r, p, false), "messages"],
    ["a stream", (r: AbuseRig, p: string) => ask(r, p, true), "messages"],
    ["a session turn", turn, "session"],
  ] as const)("logs the prompt and the completion of %s when on", async (_what, send, route) => {
    const phrase = `phrase-${randomBytes(6).toString("hex")}`;
    const res = await send(on, phrase);
    expect(res.status).toBe(200);
    await res.text();
    const line = await until(
      async () => onLogs.lines.find((l) => l.msg === "prompt" && String(l.prompt).includes(phrase)),
      "the prompt's log line",
    );
    expect(line).toMatchObject({ route, model: "claude-haiku-4-5", userId: on.user });
    expect(String(line.requestId)).toMatch(/^req_/);
    // The fake echoes the prompt: the completion holds the phrase too.
    expect(String(line.completion)).toContain(phrase);
  });

  it("writes no prompt or completion text to the log when off (the default), at any level", async () => {
    const phrase = `secret-${randomBytes(6).toString("hex")}`;
    for (const res of [
      await ask(off, phrase, false),
      await ask(off, phrase, true),
      await turn(off, phrase),
    ]) {
      expect(res.status).toBe(200);
      await res.text();
    }
    await off.service.deps.usage.flush();
    expect(offLogs.lines.length).toBeGreaterThan(0);
    expect(offLogs.lines.some((l) => JSON.stringify(l).includes(phrase))).toBe(false);
  });
});
