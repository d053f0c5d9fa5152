/**
 * Real-shaped Lambda events and a faithful stand-in for the Lambda Node.js runtime's
 * `awslambda` global, so the handler runs in tests the way it runs in Lambda.
 *
 * Event shapes follow the AWS documentation's samples (Function URL = payload format 2.0 with a
 * `lambda-url` domain; HTTP API = payload 2.0; REST API = payload 1.0). The response streaming
 * pieces mirror aws-lambda-nodejs-runtime-interface-client: `streamifyResponse` marks the handler
 * with a symbol and returns it; `HttpResponseStream.from` sets the stream's content type and, on
 * the first write, writes the JSON metadata prelude followed by 8 NUL bytes; the runtime awaits
 * the handler's promise and then requires the stream to be finished.
 */
import { randomUUID } from "node:crypto";
import { Writable } from "node:stream";

export interface HttpRequestSpec {
  method?: string;
  /** Path with an optional query string, e.g. "/v1/messages?beta=true". */
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Send the body base64-encoded, as Function URLs and HTTP APIs do for non-text content. */
  base64?: boolean;
  cookies?: string[];
  sourceIp?: string;
}

const ACCOUNT = "123456789012";
const REGION = "eu-west-1";

function split(path: string): {
  rawPath: string;
  rawQueryString: string;
  query: Record<string, string> | undefined;
} {
  const i = path.indexOf("?");
  const rawPath = i >= 0 ? path.slice(0, i) : path;
  const rawQueryString = i >= 0 ? path.slice(i + 1) : "";
  if (!rawQueryString) return { rawPath, rawQueryString, query: undefined };
  // Payload 2.0 joins repeated parameters with commas.
  const query: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(rawQueryString))
    query[k] = k in query ? `${query[k]},${v}` : v;
  return { rawPath, rawQueryString, query };
}

function encodeBody(spec: HttpRequestSpec): { body: string | null; isBase64Encoded: boolean } {
  if (spec.body === undefined) return { body: null, isBase64Encoded: false };
  const bytes = Buffer.isBuffer(spec.body) ? spec.body : Buffer.from(spec.body, "utf8");
  return spec.base64
    ? { body: bytes.toString("base64"), isBase64Encoded: true }
    : { body: bytes.toString("utf8"), isBase64Encoded: false };
}

function lowerCaseHeaders(h: Record<string, string> = {}): Record<string, string> {
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
}

function v2Event(
  spec: HttpRequestSpec,
  domainName: string,
  apiId: string,
  routeKey: string,
  extra: Record<string, unknown>,
) {
  const method = (spec.method ?? "GET").toUpperCase();
  const { rawPath, rawQueryString, query } = split(spec.path);
  const now = new Date();
  const headers = {
    "x-forwarded-proto": "https",
    "x-forwarded-port": "443",
    "x-forwarded-for": spec.sourceIp ?? "203.0.113.10",
    "x-amzn-trace-id": `Root=1-${Math.floor(now.getTime() / 1000).toString(16)}-${randomUUID().replace(/-/g, "").slice(0, 24)}`,
    host: domainName,
    "user-agent": "jest-lambda-events/1.0",
    accept: "*/*",
    ...lowerCaseHeaders(spec.headers),
  };
  return {
    version: "2.0",
    routeKey,
    rawPath,
    rawQueryString,
    ...(spec.cookies ? { cookies: spec.cookies } : {}),
    headers,
    ...(query ? { queryStringParameters: query } : {}),
    requestContext: {
      accountId: ACCOUNT,
      apiId,
      domainName,
      domainPrefix: domainName.split(".")[0]!,
      http: {
        method,
        path: rawPath,
        protocol: "HTTP/1.1",
        sourceIp: spec.sourceIp ?? "203.0.113.10",
        userAgent: headers["user-agent"],
      },
      requestId: randomUUID(),
      routeKey,
      stage: "$default",
      time: now.toUTCString(),
      timeEpoch: now.getTime(),
      ...extra,
    },
    ...encodeBody(spec),
  };
}

/** A Lambda Function URL invocation (AuthType NONE). */
export function functionUrlEvent(spec: HttpRequestSpec) {
  const urlId = "abcdefghijklmnopqrstuvwxyz234567";
  return {
    ...v2Event(spec, `${urlId}.lambda-url.${REGION}.on.aws`, urlId, "$default", {
      authentication: null,
    }),
    isBase64Encoded: encodeBody(spec).isBase64Encoded,
  } as unknown as import("hono/aws-lambda").LambdaEvent;
}

/** An API Gateway HTTP API invocation (payload format 2.0, `ANY /{proxy+}` route). */
export function httpApiV2Event(spec: HttpRequestSpec) {
  const apiId = "a1b2c3d4e5";
  const event = v2Event(
    spec,
    `${apiId}.execute-api.${REGION}.amazonaws.com`,
    apiId,
    "ANY /{proxy+}",
    {},
  );
  return {
    ...event,
    pathParameters: { proxy: event.rawPath.replace(/^\//, "") },
    stageVariables: undefined,
  } as unknown as import("hono/aws-lambda").LambdaEvent;
}

/** An API Gateway REST API invocation (payload format 1.0, proxy integration). */
export function restApiV1Event(spec: HttpRequestSpec) {
  const method = (spec.method ?? "GET").toUpperCase();
  const { rawPath, query } = split(spec.path);
  const apiId = "r1s2t3u4v5";
  const domainName = `${apiId}.execute-api.${REGION}.amazonaws.com`;
  const headers: Record<string, string> = {
    Host: domainName,
    "User-Agent": "jest-lambda-events/1.0",
    ...spec.headers,
  };
  const now = new Date();
  return {
    version: "1.0",
    resource: "/{proxy+}",
    path: rawPath,
    httpMethod: method,
    headers,
    multiValueHeaders: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]])),
    queryStringParameters: query ?? null,
    multiValueQueryStringParameters: query
      ? Object.fromEntries(Object.entries(query).map(([k, v]) => [k, v.split(",")]))
      : null,
    pathParameters: { proxy: rawPath.replace(/^\//, "") },
    stageVariables: null,
    requestContext: {
      accountId: ACCOUNT,
      apiId,
      authorizer: {},
      domainName,
      domainPrefix: apiId,
      extendedRequestId: "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
      httpMethod: method,
      identity: { sourceIp: spec.sourceIp ?? "203.0.113.10", userAgent: "jest-lambda-events/1.0" },
      path: `/prod${rawPath}`,
      protocol: "HTTP/1.1",
      requestId: randomUUID(),
      requestTime: now.toUTCString(),
      requestTimeEpoch: now.getTime(),
      resourceId: "abc123",
      resourcePath: "/{proxy+}",
      stage: "prod",
    },
    ...encodeBody(spec),
  } as unknown as import("hono/aws-lambda").LambdaEvent;
}

/** The context object the runtime passes to every invocation. */
export function lambdaContext(
  functionName = "agent-test",
  timeoutMs = 30_000,
): import("hono/aws-lambda").LambdaContext {
  const deadline = Date.now() + timeoutMs;
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${functionName}`,
    memoryLimitInMB: "512",
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: `2025/01/01/[$LATEST]${randomUUID().replace(/-/g, "")}`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
}

// ---------------------------------------------------------------------------------------------
// Response streaming runtime

export const HANDLER_STREAMING = Symbol.for("aws.lambda.runtime.handler.streaming");
export const STREAM_RESPONSE = "response";
export const HTTP_INTEGRATION_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response";
const DEFAULT_CONTENT_TYPE = "application/octet-stream";
const DELIMITER_LEN = 8;

/** The stream the runtime hands to a streaming handler, collecting what it would send to RAPID. */
export class CollectingResponseStream extends Writable {
  readonly chunks: Buffer[] = [];
  contentType = DEFAULT_CONTENT_TYPE;
  _onBeforeFirstWrite: ((write: (chunk: string | Uint8Array) => void) => void) | undefined;
  private firstWriteDone = false;

  setContentType(contentType: string): void {
    if (this.firstWriteDone) throw new Error("Cannot set content-type, too late.");
    this.contentType = contentType;
  }

  override write(chunk: unknown, encoding?: unknown, callback?: unknown): boolean {
    if (!this.firstWriteDone && typeof this._onBeforeFirstWrite === "function") {
      this._onBeforeFirstWrite((ch) => super.write(ch));
    }
    this.firstWriteDone = true;
    const data =
      typeof chunk === "string" || chunk instanceof Uint8Array ? chunk : JSON.stringify(chunk);
    return (super.write as (c: unknown, e?: unknown, cb?: unknown) => boolean)(
      data,
      encoding,
      callback,
    );
  }

  override _write(
    chunk: Buffer,
    _encoding: BufferEncoding,
    callback: (error?: Error | null) => void,
  ): void {
    this.chunks.push(Buffer.from(chunk));
    callback();
  }
}

/**
 * The runtime does not hand the handler its stream object: it hands a plain object with the
 * stream's methods bound and a few properties forwarded (toWritableResponseStream in the runtime
 * interface client). Code that relied on `instanceof Writable` or on other members would break
 * in Lambda, so it breaks here too.
 */
const FACADE_METHODS = [
  "cork",
  "destroy",
  "end",
  "uncork",
  "write",
  "addListener",
  "on",
  "once",
  "prependListener",
  "prependOnceListener",
  "off",
  "removeListener",
  "removeAllListeners",
  "setMaxListeners",
  "getMaxListeners",
  "listeners",
  "rawListeners",
  "listenerCount",
  "eventNames",
  "emit",
  "setContentType",
] as const;
const FACADE_READ_WRITE = ["destroyed", "_onBeforeFirstWrite"] as const;
const FACADE_READ_ONLY = [
  "writableFinished",
  "writableObjectMode",
  "writableEnded",
  "writableNeedDrain",
  "writableHighWaterMark",
  "writableCorked",
  "writableLength",
  "writable",
] as const;

function writableFacade(inner: CollectingResponseStream): object {
  const facade: Record<string, unknown> = {};
  const target = inner as unknown as Record<string, unknown>;
  for (const m of FACADE_METHODS)
    facade[m] = (target[m] as (...a: unknown[]) => unknown).bind(inner);
  for (const p of FACADE_READ_WRITE) {
    Object.defineProperty(facade, p, { get: () => target[p], set: (v) => (target[p] = v) });
  }
  for (const p of FACADE_READ_ONLY) Object.defineProperty(facade, p, { get: () => target[p] });
  return facade;
}

export interface AwsLambdaPolyfill {
  streamifyResponse<H extends (...args: never[]) => unknown>(handler: H): H;
  HttpResponseStream: { from(stream: Writable, prelude: unknown): Writable };
}

const polyfill: AwsLambdaPolyfill = {
  streamifyResponse(handler) {
    (handler as unknown as Record<symbol, string>)[HANDLER_STREAMING] = STREAM_RESPONSE;
    return handler;
  },
  HttpResponseStream: {
    from(stream, prelude) {
      const s = stream as unknown as Pick<
        CollectingResponseStream,
        "setContentType" | "_onBeforeFirstWrite"
      >;
      s.setContentType(HTTP_INTEGRATION_CONTENT_TYPE);
      // JSON.stringify is required: a NUL byte may not appear in the prelude.
      const metadata = JSON.stringify(prelude);
      s._onBeforeFirstWrite = (write) => {
        write(metadata);
        write(new Uint8Array(DELIMITER_LEN));
      };
      return stream;
    },
  },
};

/** Puts `awslambda` on globalThis, as the runtime does before loading the handler module. */
export function installAwsLambdaGlobal(): () => void {
  const g = globalThis as { awslambda?: unknown };
  const previous = g.awslambda;
  g.awslambda = polyfill;
  return () => {
    if (previous === undefined) delete g.awslambda;
    else g.awslambda = previous;
  };
}

export interface StreamedResponse {
  contentType: string;
  /** Everything the handler wrote, prelude included. */
  raw: Buffer;
  /** The HTTP metadata prelude, when the handler used HttpResponseStream.from. */
  prelude:
    { statusCode?: number; headers?: Record<string, string>; cookies?: string[] } | undefined;
  body: Buffer;
  /** Body writes as they arrived (a streamed SSE response arrives in many). */
  bodyChunks: Buffer[];
}

/**
 * Invokes a streaming handler the way the runtime does: the handler must be marked streaming,
 * must return a promise, and must have finished the stream when that promise settles.
 */
export async function invokeStreaming(
  handler: unknown,
  event: unknown,
  context = lambdaContext(),
): Promise<StreamedResponse> {
  if ((handler as Record<symbol, unknown>)[HANDLER_STREAMING] !== STREAM_RESPONSE) {
    throw new Error(
      "the handler is not marked for response streaming (awslambda.streamifyResponse)",
    );
  }
  const stream = new CollectingResponseStream();
  const finished = new Promise<void>((resolve, reject) => {
    stream.once("finish", resolve);
    stream.once("error", reject);
  });
  const result = (handler as (e: unknown, s: unknown, c: unknown) => unknown)(
    event,
    writableFacade(stream),
    context,
  );
  if (!(result instanceof Promise))
    throw new Error("Streaming does not support non-async handlers.");
  await result;
  if (!stream.writableFinished) {
    await Promise.race([
      finished,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error("Response stream is not finished.")), 1000).unref(),
      ),
    ]);
  }
  const raw = Buffer.concat(stream.chunks);
  if (stream.contentType !== HTTP_INTEGRATION_CONTENT_TYPE) {
    return {
      contentType: stream.contentType,
      raw,
      prelude: undefined,
      body: raw,
      bodyChunks: stream.chunks,
    };
  }
  // chunks[0] is the prelude JSON, chunks[1] the 8 NUL delimiter, then the body writes.
  const delimiter = raw.indexOf(Buffer.alloc(DELIMITER_LEN));
  if (delimiter < 0) throw new Error("streamed response has no metadata delimiter");
  const prelude = JSON.parse(
    raw.subarray(0, delimiter).toString("utf8"),
  ) as StreamedResponse["prelude"];
  const bodyChunks = stream.chunks.slice(2).filter((c) => c.length > 0);
  return {
    contentType: stream.contentType,
    raw,
    prelude,
    body: raw.subarray(delimiter + DELIMITER_LEN),
    bodyChunks,
  };
}

// ---------------------------------------------------------------------------------------------
// A local AWS Secrets Manager endpoint (the awsJson1_1 protocol of GetSecretValue), for the SDK
// pointed at it with `endpoint` or AWS_ENDPOINT_URL_SECRETS_MANAGER.

export interface FakeSecret {
  name: string;
  region?: string;
  string?: string;
  binary?: Buffer;
  /** Answer AccessDeniedException, as for a secret outside the role's policy. */
  denied?: boolean;
}

export interface SecretsManagerRequest {
  target: string | undefined;
  secretId: string;
  /** Region in the SigV4 credential scope: the SDK signs for the region it was built with. */
  signedRegion: string | undefined;
  signedService: string | undefined;
}

export async function startFakeSecretsManager(secrets: FakeSecret[], account = ACCOUNT) {
  const { createServer } = await import("node:http");
  const requests: SecretsManagerRequest[] = [];
  const arnOf = (s: FakeSecret) =>
    `arn:aws:secretsmanager:${s.region ?? REGION}:${account}:secret:${s.name}-AbCdEf`;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const target = req.headers["x-amz-target"] as string | undefined;
      const scope = /Credential=[^/]+\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request/.exec(
        String(req.headers.authorization ?? ""),
      );
      let secretId = "";
      try {
        secretId = String(
          (JSON.parse(Buffer.concat(chunks).toString("utf8")) as { SecretId?: unknown }).SecretId ??
            "",
        );
      } catch {
        /* answered below as a validation error */
      }
      requests.push({ target, secretId, signedRegion: scope?.[1], signedService: scope?.[2] });
      const reply = (status: number, body: object, errorType?: string) => {
        res.writeHead(status, {
          "content-type": "application/x-amz-json-1.1",
          "x-amzn-requestid": randomUUID(),
          ...(errorType ? { "x-amzn-errortype": errorType } : {}),
        });
        res.end(JSON.stringify(body));
      };
      if (target !== "secretsmanager.GetSecretValue") {
        return reply(
          400,
          { __type: "UnknownOperationException", message: `unsupported target ${target}` },
          "UnknownOperationException",
        );
      }
      if (!scope)
        return reply(
          403,
          { __type: "MissingAuthenticationTokenException", message: "request is not signed" },
          "MissingAuthenticationTokenException",
        );
      const secret = secrets.find((s) => s.name === secretId || arnOf(s) === secretId);
      if (!secret || (secretId.startsWith("arn:") && secret.region && secret.region !== scope[1])) {
        return reply(
          400,
          {
            __type: "ResourceNotFoundException",
            Message: "Secrets Manager can't find the specified secret.",
          },
          "ResourceNotFoundException",
        );
      }
      if (secret.denied) {
        return reply(
          400,
          {
            __type: "AccessDeniedException",
            Message: `User: arn:aws:sts::${account}:assumed-role/agent/fn is not authorized to perform: secretsmanager:GetSecretValue`,
          },
          "AccessDeniedException",
        );
      }
      return reply(200, {
        ARN: arnOf(secret),
        Name: secret.name,
        VersionId: "c8f1a2b3-0000-4000-8000-000000000001",
        VersionStages: ["AWSCURRENT"],
        CreatedDate: 1735689600,
        ...(secret.binary
          ? { SecretBinary: secret.binary.toString("base64") }
          : { SecretString: secret.string }),
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as import("node:net").AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    arnOf,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
