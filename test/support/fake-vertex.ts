/**
 * A local fake of Vertex AI's endpoints for Claude, checking what Vertex checks:
 *
 * - `POST /v1/projects/{project}/locations/{region}/publishers/anthropic/models/{model}:rawPredict`
 *   and `:streamRawPredict` (SSE, as the Anthropic API streams), and
 *   `.../models/count-tokens:rawPredict`. The project and location must be the fake's (else 403
 *   PERMISSION_DENIED / 404 NOT_FOUND, in Google's error shape); an unknown model is a 404.
 * - `Authorization: Bearer <access token>` with the fake's token, else 401 UNAUTHENTICATED.
 * - The body: `anthropic_version: "vertex-2023-10-16"`; no `model` (it is in the URL), except for
 *   count-tokens, whose body names the model. Betas arrive as the `anthropic-beta` header.
 *
 * Behind the protocol sits the model, an in-process fake Anthropic API (fake-anthropic.ts); its
 * answers and errors (429, 529 `overloaded_error`, ...) are relayed as they are, as Vertex relays
 * the model's. `failNext` injects failures in front of it.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { OAuth2Client } from "google-auth-library";
import {
  FAKE_API_KEY,
  startFakeAnthropic,
  type FakeAnthropic,
  type FakeAnthropicOptions,
} from "./fake-anthropic";

export const FAKE_VERTEX_TOKEN = "ya29.fake-vertex-access-token-0000";
export const FAKE_VERTEX_PROJECT = "fake-project-0001";
export const VERTEX_VERSION = "vertex-2023-10-16";

/**
 * Credentials for the service that need no Google endpoint: an OAuth2 client holding an access
 * token valid for an hour, which google-auth-library hands out without a refresh.
 */
export function fakeVertexAuthClient(token = FAKE_VERTEX_TOKEN): OAuth2Client {
  const client = new OAuth2Client();
  client.setCredentials({ access_token: token, expiry_date: Date.now() + 3_600_000 });
  return client;
}

/** A request as the fake saw it (the bearer token replaced). */
export interface VertexCall {
  method: string;
  path: string;
  operation: "rawPredict" | "streamRawPredict" | null;
  model: string | null;
  headers: Record<string, string>;
  body: unknown;
  status?: number;
}

/** An HTTP failure: Anthropic's shape (`type`) or Google's (`google`: a status name such as RESOURCE_EXHAUSTED). */
export type VertexFault =
  | { status: number; type: string; message?: string }
  | { status: number; google: string; message?: string };

export interface FakeVertexOptions {
  project?: string;
  region: string;
  /** Vertex model ids the fake serves, each with the Anthropic id the model behind answers as. */
  models: Record<string, string>;
  anthropic?: FakeAnthropicOptions;
}

export interface FakeVertex {
  /** The base URL for ANTHROPIC_VERTEX_BASE_URL (the SDK appends the project path). */
  readonly url: string;
  readonly project: string;
  readonly region: string;
  readonly anthropic: FakeAnthropic;
  readonly calls: VertexCall[];
  /** The next `times` predictions on a model whose id contains `modelPart` fail with `fault`. */
  failNext(modelPart: string, times: number, fault: VertexFault): void;
  close(): Promise<void>;
}

type Json = Record<string, unknown>;

export async function startFakeVertex(options: FakeVertexOptions): Promise<FakeVertex> {
  const project = options.project ?? FAKE_VERTEX_PROJECT;
  const anthropic = await startFakeAnthropic({ maxRecorded: 1000, ...options.anthropic });
  const calls: VertexCall[] = [];
  const faults: Array<{ modelPart: string; left: number; fault: VertexFault }> = [];

  const server = createServer((req, res) => {
    void handle(req, res).catch((err: Error) => {
      if (!res.headersSent) googleError(res, 500, "INTERNAL", err.message);
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await readBody(req);
    const url = new URL(req.url ?? "/", "http://fake");
    const route =
      /^\/v1\/projects\/([^/]+)\/locations\/([^/]+)\/publishers\/anthropic\/models\/([^/:]+):(rawPredict|streamRawPredict)$/.exec(
        url.pathname,
      );
    const call: VertexCall = {
      method: req.method ?? "",
      path: url.pathname + url.search,
      operation: (route?.[4] as VertexCall["operation"] | undefined) ?? null,
      model: route ? decodeURIComponent(route[3]!) : null,
      headers: redactedHeaders(req),
      body: parseJson(raw.toString("utf8")),
    };
    calls.push(call);
    const answer = (status: number) => (call.status = status);

    if (req.headers.authorization !== `Bearer ${FAKE_VERTEX_TOKEN}`)
      return void answer(
        googleError(res, 401, "UNAUTHENTICATED", "Request had invalid authentication credentials."),
      );
    if (req.method !== "POST" || !route)
      return void answer(googleError(res, 404, "NOT_FOUND", "The requested URL was not found."));
    if (decodeURIComponent(route[1]!) !== project)
      return void answer(
        googleError(res, 403, "PERMISSION_DENIED", `Permission denied on project ${route[1]}`),
      );
    if (decodeURIComponent(route[2]!) !== options.region)
      return void answer(googleError(res, 404, "NOT_FOUND", `Location ${route[2]} not found`));

    const body = call.body as Json | undefined;
    if (!body || typeof body !== "object")
      return void answer(invalid(res, "the request body must be a JSON object"));
    if (body.anthropic_version !== VERTEX_VERSION)
      return void answer(
        invalid(
          res,
          `anthropic_version: must be ${VERTEX_VERSION}, got ${JSON.stringify(body.anthropic_version)}`,
        ),
      );

    if (call.model === "count-tokens") {
      if (call.operation !== "rawPredict")
        return void answer(googleError(res, 404, "NOT_FOUND", "not found"));
      const model = typeof body.model === "string" ? options.models[body.model] : undefined;
      if (!model)
        return void answer(invalid(res, `model: unknown model ${JSON.stringify(body.model)}`));
      const counted = await toModel(req, "/v1/messages/count_tokens", { ...body, model });
      return void answer(await relay(res, counted));
    }

    if ("model" in body) return void answer(invalid(res, "model: Extra inputs are not permitted"));
    const model = options.models[call.model!];
    if (!model)
      return void answer(
        googleError(
          res,
          404,
          "NOT_FOUND",
          `Publisher Model ${call.model} was not found or your project does not have access to it.`,
        ),
      );
    const fault = takeFault(call.model!);
    if (fault) {
      const message = fault.message ?? ("google" in fault ? fault.google : fault.type);
      return void answer(
        "google" in fault
          ? googleError(res, fault.status, fault.google, message)
          : json(res, fault.status, { type: "error", error: { type: fault.type, message } }),
      );
    }
    const streaming = call.operation === "streamRawPredict";
    const upstream = await toModel(req, "/v1/messages", {
      ...body,
      model,
      stream: streaming && body.stream !== false,
    });
    answer(await relay(res, upstream));
  }

  function takeFault(model: string): VertexFault | undefined {
    const i = faults.findIndex((f) => f.left > 0 && model.includes(f.modelPart));
    if (i < 0) return undefined;
    const f = faults[i]!;
    f.left--;
    if (f.left === 0) faults.splice(i, 1);
    return f.fault;
  }

  /** The request to the model behind, as the Anthropic API takes it (betas as they came). */
  function toModel(req: IncomingMessage, path: string, request: Json): Promise<Response> {
    const rest: Json = { ...request };
    delete rest.anthropic_version;
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "x-api-key": FAKE_API_KEY,
      "anthropic-version": "2023-06-01",
    };
    const beta = req.headers["anthropic-beta"];
    if (typeof beta === "string") headers["anthropic-beta"] = beta;
    return fetch(`${anthropic.url}${path}`, {
      method: "POST",
      headers,
      body: JSON.stringify(rest),
    });
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    project,
    region: options.region,
    anthropic,
    get calls() {
      return [...calls];
    },
    failNext(modelPart, times, fault) {
      faults.push({ modelPart, left: times, fault });
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await anthropic.close();
    },
  };
}

/** The model's answer as it came: status, content type and body (a stream as it arrives). */
async function relay(res: ServerResponse, upstream: Response): Promise<number> {
  res.writeHead(upstream.status, {
    "content-type": upstream.headers.get("content-type") ?? "application/json",
  });
  if (upstream.body) {
    for await (const chunk of upstream.body as unknown as AsyncIterable<Uint8Array>)
      res.write(chunk);
  }
  res.end();
  return upstream.status;
}

function redactedHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    const v = Array.isArray(value) ? value.join(",") : (value ?? "");
    out[name] = name === "authorization" ? v.replace(/^Bearer .+$/, "Bearer <redacted>") : v;
  }
  return out;
}

function googleError(res: ServerResponse, status: number, code: string, message: string): number {
  return json(res, status, { error: { code: status, message, status: code } });
}

const invalid = (res: ServerResponse, message: string) =>
  json(res, 400, { type: "error", error: { type: "invalid_request_error", message } });

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
