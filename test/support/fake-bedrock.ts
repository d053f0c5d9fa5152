/**
 * A local fake of Amazon Bedrock's runtime API for Claude, checking what Bedrock checks:
 *
 * - `POST /model/{modelId}/invoke`, `/invoke-with-response-stream` and `/count-tokens` (the id
 *   percent-decoded; `<geo>.<base id>` or the base id; an unknown id is a 400
 *   ValidationException, "The provided model identifier is invalid.").
 * - A valid SigV4 `Authorization` (service `bedrock`, this region, the fake's key pair): the
 *   signature is computed again with @smithy/signature-v4 over the request as received (method,
 *   raw path, query, the signed headers, the body bytes) and compared; a mismatch, an unknown key,
 *   a wrong scope, an `x-amz-date` more than 5 minutes off or an `x-amz-content-sha256` that is not
 *   the body's hash is a 403, as Bedrock answers. Or a
 *   Bedrock API key as `Authorization: Bearer` (AWS_BEARER_TOKEN_BEDROCK).
 * - The InvokeModel body: `anthropic_version: "bedrock-2023-05-31"`, and no `model` or `stream`
 *   (Bedrock: "extraneous key [model] is not permitted"). Betas arrive as `anthropic_beta`.
 * - CountTokens: `{"input":{"invokeModel":{"body":"<base64 InvokeModel body>"}}}` for a base
 *   model id (inference-profile ids are refused), answered `{"inputTokens": n}`.
 * - Streams in the binary AWS event-stream encoding (@smithy/eventstream-codec): one message per
 *   Anthropic event, `:event-type: chunk`, payload `{"bytes": base64(event JSON)}`; `message_stop`
 *   carries `amazon-bedrock-invocationMetrics` as Bedrock adds it; failures inside a stream are
 *   `:message-type: exception` messages.
 *
 * Behind the protocol sits the model: an in-process fake Anthropic API (fake-anthropic.ts), so
 * text, tool use, prompt caching and usage behave as there, and its behaviour controls work.
 * Errors it returns are answered in Bedrock's shape (`{"message"}` and `x-amzn-ErrorType`: 429
 * ThrottlingException, 529 becomes 503 ServiceUnavailableException, 500 InternalServerException,
 * 400 ValidationException).
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Sha256 } from "@aws-crypto/sha256-js";
import { EventStreamCodec } from "@smithy/eventstream-codec";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { fromUtf8, toUtf8 } from "@smithy/util-utf8";
import {
  FAKE_API_KEY,
  startFakeAnthropic,
  type FakeAnthropic,
  type FakeAnthropicOptions,
} from "./fake-anthropic";

/** The key pair the fake accepts (pass it to the service as its AWS credentials). */
export const FAKE_AWS_CREDENTIALS = {
  accessKeyId: "AKIAFAKEBEDROCK00001",
  secretAccessKey: "fakeBedrockSecretKey/000000000000000000000",
};
/** The Bedrock API key the fake accepts as `Authorization: Bearer`. */
export const FAKE_BEDROCK_API_KEY = "ABSKfakebedrockapikey0000";
export const BEDROCK_VERSION = "bedrock-2023-05-31";
const GEOS = ["global", "us", "eu", "jp", "apac", "au"];
const MAX_SKEW_MS = 5 * 60_000;

export type BedrockOperation = "invoke" | "invoke-with-response-stream" | "count-tokens";

/** A request as the fake saw it: secrets (signature, token) replaced, everything else kept. */
export interface BedrockCall {
  method: string;
  /** The raw path, as sent (percent-encoding kept). */
  path: string;
  operation: BedrockOperation | null;
  modelId: string | null;
  headers: Record<string, string>;
  body: unknown;
  status?: number;
}

/** A failure Bedrock answers with (HTTP), or sends inside a stream after `afterEvents` events. */
export type BedrockFault =
  | { status: number; exception: string; message?: string }
  | { stream: true; exception: string; afterEvents: number; message?: string };

export interface FakeBedrockOptions {
  region?: string;
  /** Base model ids the fake serves, each with the Anthropic id the model behind answers as. */
  models: Record<string, string>;
  /** Base ids without CountTokens on bedrock-runtime (those that launched cross-Region only). */
  noCountTokens?: readonly string[];
  anthropic?: FakeAnthropicOptions;
}

export interface FakeBedrock {
  readonly url: string;
  readonly region: string;
  /** The model behind the protocol: its behaviour controls and recorded requests. */
  readonly anthropic: FakeAnthropic;
  /** Every request, oldest first. */
  readonly calls: BedrockCall[];
  /** The next `times` invocations of a model whose id contains `modelPart` fail with `fault`. */
  failNext(modelPart: string, times: number, fault: BedrockFault): void;
  /** Streams pause after their first event until the returned function is called. */
  holdStreams(): () => void;
  close(): Promise<void>;
}

type Json = Record<string, unknown>;

export async function startFakeBedrock(options: FakeBedrockOptions): Promise<FakeBedrock> {
  const region = options.region ?? "us-east-1";
  const anthropic = await startFakeAnthropic({ maxRecorded: 1000, ...options.anthropic });
  const calls: BedrockCall[] = [];
  const faults: Array<{ modelPart: string; left: number; fault: BedrockFault }> = [];
  const codec = new EventStreamCodec(toUtf8, fromUtf8);
  let gate: Promise<void> | null = null;

  const server = createServer((req, res) => {
    void handle(req, res).catch((err: Error) => {
      if (!res.headersSent) awsError(res, 500, "InternalServerException", err.message);
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await readBody(req);
    const url = new URL(req.url ?? "/", "http://fake");
    const route = /^\/model\/([^/]+)\/(invoke|invoke-with-response-stream|count-tokens)$/.exec(
      url.pathname,
    );
    const call: BedrockCall = {
      method: req.method ?? "",
      path: url.pathname + url.search,
      operation: (route?.[2] as BedrockOperation | undefined) ?? null,
      modelId: route ? decodeURIComponent(route[1]!) : null,
      headers: redactedHeaders(req),
      body: parseJson(raw.toString("utf8")),
    };
    calls.push(call);
    const answer = (status: number) => (call.status = status);

    const denied = await authError(req, url, raw);
    if (denied) return void answer(awsError(res, 403, denied.type, denied.message));
    if (req.method !== "POST" || !route || !call.modelId)
      return void answer(awsError(res, 404, "UnknownOperationException", "unknown operation"));
    const modelId = call.modelId;
    const base = GEOS.some((g) => modelId.startsWith(`${g}.`))
      ? modelId.slice(modelId.indexOf(".") + 1)
      : modelId;
    const model = options.models[base];
    if (!model) return void answer(validation(res, "The provided model identifier is invalid."));

    if (call.operation === "count-tokens") {
      if (base !== modelId || options.noCountTokens?.includes(base))
        return void answer(validation(res, "The provided model doesn't support counting tokens."));
      const input = (call.body as { input?: { invokeModel?: { body?: unknown } } } | undefined)
        ?.input?.invokeModel?.body;
      const body =
        typeof input === "string" ? parseJson(Buffer.from(input, "base64").toString()) : undefined;
      const invalid = invalidInvokeBody(body);
      if (invalid) return void answer(validation(res, invalid));
      const counted = await toModel("/v1/messages/count_tokens", { ...(body as Json), model });
      if (counted.status !== 200) return void answer(await fromModelError(res, counted));
      const { input_tokens } = (await counted.json()) as { input_tokens: number };
      return void answer(json(res, 200, { inputTokens: input_tokens }));
    }

    const invalid = invalidInvokeBody(call.body);
    if (invalid) return void answer(validation(res, invalid));
    const streaming = call.operation === "invoke-with-response-stream";
    const fault = takeFault(modelId);
    if (fault && "status" in fault)
      return void answer(
        awsError(res, fault.status, fault.exception, fault.message ?? fault.exception),
      );
    const request = { ...(call.body as Json), model, ...(streaming ? { stream: true } : {}) };
    const upstream = await toModel("/v1/messages", request);
    if (upstream.status !== 200) return void answer(await fromModelError(res, upstream));
    if (!streaming) return void answer(json(res, 200, await upstream.json()));
    answer(200);
    await relayStream(res, upstream, fault && "stream" in fault ? fault : undefined);
  }

  /** The InvokeModel body Bedrock accepts for Claude, or why not. */
  function invalidInvokeBody(body: unknown): string | undefined {
    if (!body || typeof body !== "object") return "Malformed input request: expected a JSON object";
    const b = body as Json;
    for (const key of ["model", "stream"])
      if (key in b) return `Malformed input request: extraneous key [${key}] is not permitted`;
    if (b.anthropic_version !== BEDROCK_VERSION)
      return `Malformed input request: anthropic_version must be ${BEDROCK_VERSION}, got ${JSON.stringify(b.anthropic_version)}`;
    return undefined;
  }

  /** The same request to the model behind, as the Anthropic API takes it. */
  function toModel(path: string, request: Json): Promise<Response> {
    const rest: Json = { ...request };
    const betas = rest.anthropic_beta;
    delete rest.anthropic_version;
    delete rest.anthropic_beta;
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "x-api-key": FAKE_API_KEY,
      "anthropic-version": "2023-06-01",
    };
    if (Array.isArray(betas)) headers["anthropic-beta"] = betas.join(",");
    return fetch(`${anthropic.url}${path}`, {
      method: "POST",
      headers,
      body: JSON.stringify(rest),
    });
  }

  async function relayStream(
    res: ServerResponse,
    upstream: Response,
    fault: Extract<BedrockFault, { stream: true }> | undefined,
  ): Promise<void> {
    res.writeHead(200, {
      "content-type": "application/vnd.amazon.eventstream",
      "x-amzn-bedrock-content-type": "application/json",
      "x-amzn-requestid": `fake-${Date.now()}`,
    });
    let sent = 0;
    for await (const event of sseEvents(upstream)) {
      if (fault && sent === fault.afterEvents) {
        res.end(exceptionFrame(fault.exception, fault.message ?? fault.exception));
        return;
      }
      let payload = event.data;
      if (event.event === "error") {
        const type = (parseJson(payload) as { error?: { type?: string } } | undefined)?.error?.type;
        const exception =
          type === "overloaded_error"
            ? "serviceUnavailableException"
            : type === "rate_limit_error"
              ? "throttlingException"
              : "modelStreamErrorException";
        res.end(exceptionFrame(exception, "the model stream failed"));
        return;
      }
      if (event.event === "message_stop") {
        // Bedrock adds its own metrics to the last chunk.
        payload = JSON.stringify({
          ...(parseJson(payload) as Json),
          "amazon-bedrock-invocationMetrics": { inputTokenCount: 0, outputTokenCount: 0 },
        });
      }
      res.write(chunkFrame(payload));
      sent++;
      if (sent === 1 && gate) await gate;
    }
    res.end();
  }

  function chunkFrame(eventJson: string): Uint8Array {
    const bytes = Buffer.from(eventJson, "utf8").toString("base64");
    return codec.encode({
      headers: {
        ":event-type": { type: "string", value: "chunk" },
        ":content-type": { type: "string", value: "application/json" },
        ":message-type": { type: "string", value: "event" },
      },
      body: fromUtf8(JSON.stringify({ bytes })),
    });
  }

  function exceptionFrame(exception: string, message: string): Uint8Array {
    return codec.encode({
      headers: {
        ":exception-type": { type: "string", value: exception },
        ":content-type": { type: "string", value: "application/json" },
        ":message-type": { type: "string", value: "exception" },
      },
      body: fromUtf8(JSON.stringify({ message })),
    });
  }

  function takeFault(modelId: string): BedrockFault | undefined {
    const i = faults.findIndex((f) => f.left > 0 && modelId.includes(f.modelPart));
    if (i < 0) return undefined;
    const f = faults[i]!;
    f.left--;
    if (f.left === 0) faults.splice(i, 1);
    return f.fault;
  }

  /** Why the request's authentication fails, as Bedrock names it, or null when it is valid. */
  async function authError(
    req: IncomingMessage,
    url: URL,
    body: Buffer,
  ): Promise<{ type: string; message: string } | null> {
    const authorization = req.headers.authorization ?? "";
    if (authorization.startsWith("Bearer ")) {
      return authorization.slice(7) === FAKE_BEDROCK_API_KEY
        ? null
        : {
            type: "UnrecognizedClientException",
            message: "The security token included in the request is invalid.",
          };
    }
    const m =
      /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(
        authorization,
      );
    if (!m)
      return {
        type: "MissingAuthenticationTokenException",
        message: "Missing Authentication Token",
      };
    const [, keyId, , scopeRegion, service, signedHeaders, signature] = m;
    if (keyId !== FAKE_AWS_CREDENTIALS.accessKeyId)
      return {
        type: "UnrecognizedClientException",
        message: "The security token included in the request is invalid.",
      };
    if (scopeRegion !== region || service !== "bedrock")
      return {
        type: "InvalidSignatureException",
        message: `Credential should be scoped to a valid region and service bedrock`,
      };
    const amzDate = String(req.headers["x-amz-date"] ?? "");
    const at = Date.parse(
      amzDate.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, "$1-$2-$3T$4:$5:$6Z"),
    );
    if (!Number.isFinite(at) || Math.abs(Date.now() - at) > MAX_SKEW_MS)
      return { type: "InvalidSignatureException", message: "Signature expired" };
    // A signed payload hash header must be the body's: the signature then covers the body.
    const declared = req.headers["x-amz-content-sha256"];
    if (typeof declared === "string" && declared !== "UNSIGNED-PAYLOAD") {
      const hash = new Sha256();
      hash.update(body);
      if (Buffer.from(await hash.digest()).toString("hex") !== declared)
        return {
          type: "InvalidSignatureException",
          message: "The provided 'x-amz-content-sha256' header does not match what was computed.",
        };
    }
    const headers: Record<string, string> = {};
    for (const name of signedHeaders!.split(";")) {
      const v = req.headers[name];
      headers[name] = Array.isArray(v) ? v.join(",") : (v ?? "");
    }
    const query: Record<string, string | string[]> = {};
    for (const key of new Set(url.searchParams.keys())) query[key] = url.searchParams.getAll(key);
    const signer = new SignatureV4({
      service: "bedrock",
      region,
      credentials: FAKE_AWS_CREDENTIALS,
      sha256: Sha256,
    });
    const signed = await signer.sign(
      new HttpRequest({
        method: req.method ?? "POST",
        protocol: "http:",
        hostname: url.hostname,
        path: url.pathname,
        query,
        headers,
        body,
      }),
      { signingDate: new Date(at) },
    );
    const expected = /Signature=([0-9a-f]{64})/.exec(String(signed.headers.authorization))?.[1];
    return expected === signature
      ? null
      : {
          type: "InvalidSignatureException",
          message:
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
        };
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    region,
    anthropic,
    get calls() {
      return [...calls];
    },
    failNext(modelPart, times, fault) {
      faults.push({ modelPart, left: times, fault });
    },
    holdStreams() {
      let release!: () => void;
      gate = new Promise<void>((resolve) => (release = resolve));
      return () => {
        gate = null;
        release();
      };
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await anthropic.close();
    },
  };
}

/** Headers as received, with the signature and tokens replaced (what a closing note may quote). */
function redactedHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    const v = Array.isArray(value) ? value.join(",") : (value ?? "");
    if (name === "authorization")
      out[name] = v.startsWith("Bearer ")
        ? "Bearer <redacted>"
        : v.replace(/Signature=[0-9a-f]+/, "Signature=<redacted>");
    else if (name === "x-amz-security-token") out[name] = "<redacted>";
    else out[name] = v;
  }
  return out;
}

function awsError(res: ServerResponse, status: number, type: string, message: string): number {
  res.writeHead(status, {
    "content-type": "application/json",
    "x-amzn-errortype": `${type}:http://internal.amazon.com/coral/com.amazon.bedrock/`,
  });
  res.end(JSON.stringify({ message }));
  return status;
}

const validation = (res: ServerResponse, message: string) =>
  awsError(res, 400, "ValidationException", message);

const BEDROCK_EXCEPTION_OF: Record<number, [number, string]> = {
  400: [400, "ValidationException"],
  429: [429, "ThrottlingException"],
  500: [500, "InternalServerException"],
  529: [503, "ServiceUnavailableException"],
};

/** The model's error as Bedrock relays it (its own status and exception names). */
async function fromModelError(res: ServerResponse, upstream: Response): Promise<number> {
  const body = (await upstream.json().catch(() => ({}))) as { error?: { message?: string } };
  const [status, exception] = BEDROCK_EXCEPTION_OF[upstream.status] ?? [
    upstream.status,
    "ModelErrorException",
  ];
  return awsError(res, status, exception, body.error?.message ?? exception);
}

function json(res: ServerResponse, status: number, body: unknown): number {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
  return status;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/** The events of an SSE response, as `{event, data}`. */
export async function* sseEvents(
  response: Response,
): AsyncGenerator<{ event: string; data: string }> {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data: string[] = [];
      for (const line of frame.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) yield { event, data: data.join("\n") };
    }
  }
}
