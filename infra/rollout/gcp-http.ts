/**
 * A small JSON client for the Google REST APIs the GCP kinds call (Cloud Run Admin v2, Compute
 * Engine v1, Cloud Monitoring v3): a bearer token from an injected provider (Application Default
 * Credentials by default, through google-auth-library), base URLs that tests point at a local
 * fake, responses checked by a zod schema, and retries of 429 and 5xx.
 */
import { GoogleAuth } from "google-auth-library";
import type * as z from "zod";
import type { Clock } from "./runtime";

/** Anything that yields an OAuth access token; tests pass a fake. */
export interface TokenProvider {
  getAccessToken(): Promise<string | null | undefined>;
}

/** The APIs' roots, without a trailing slash. */
export interface GcpBaseUrls {
  run: string;
  compute: string;
  monitoring: string;
}

export const GOOGLE_BASE_URLS: GcpBaseUrls = {
  run: "https://run.googleapis.com",
  compute: "https://compute.googleapis.com",
  monitoring: "https://monitoring.googleapis.com",
};

/** Every call here is covered by this scope (each method's "Authorization scopes" section). */
export const CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform";

/** Application Default Credentials: the deployer's, where `pulumi up` runs. */
export function defaultTokenProvider(): TokenProvider {
  return new GoogleAuth({ scopes: [CLOUD_PLATFORM_SCOPE] });
}

/** A non-2xx answer, with the API's own message. */
export class GcpHttpError extends Error {
  override readonly name = "GcpHttpError";
  constructor(
    readonly method: string,
    readonly url: string,
    readonly status: number,
    readonly body: string,
  ) {
    super(`${method} ${url} answered ${status}: ${apiMessage(body)}`);
  }
}

export interface GcpClientOptions {
  tokens: TokenProvider;
  clock: Clock;
  baseUrls?: GcpBaseUrls;
  /** Attempts for a 429/5xx or a network error. @default 4 */
  attempts?: number;
}

const RETRY_BASE_MS = 2_000;

export class GcpClient {
  readonly base: GcpBaseUrls;
  private readonly attempts: number;

  constructor(private readonly opts: GcpClientOptions) {
    this.base = opts.baseUrls ?? GOOGLE_BASE_URLS;
    this.attempts = opts.attempts ?? 4;
  }

  get<S extends z.ZodType>(url: string, schema: S): Promise<z.output<S>> {
    return this.request("GET", url, schema);
  }

  patch<S extends z.ZodType>(url: string, body: unknown, schema: S): Promise<z.output<S>> {
    return this.request("PATCH", url, schema, body);
  }

  delete<S extends z.ZodType>(url: string, schema: S): Promise<z.output<S>> {
    return this.request("DELETE", url, schema);
  }

  private async request<S extends z.ZodType>(
    method: string,
    url: string,
    schema: S,
    body?: unknown,
  ): Promise<z.output<S>> {
    const token = await this.opts.tokens.getAccessToken();
    if (!token) {
      throw new Error(
        "no Google access token: run where Application Default Credentials are set (gcloud auth application-default login, or a service account)",
      );
    }
    for (let attempt = 1; ; attempt++) {
      let res: Response;
      try {
        res = await fetch(url, {
          method,
          headers: {
            authorization: `Bearer ${token}`,
            ...(body === undefined ? {} : { "content-type": "application/json" }),
          },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      } catch (err) {
        if (attempt >= this.attempts) throw err;
        await this.opts.clock.sleep(RETRY_BASE_MS * 2 ** (attempt - 1));
        continue;
      }
      const text = await res.text();
      if (res.ok) {
        const parsed = schema.safeParse(text ? JSON.parse(text) : {});
        if (!parsed.success) {
          throw new Error(`${method} ${url}: unexpected answer: ${parsed.error.message}`);
        }
        return parsed.data;
      }
      // A PATCH that failed with 5xx may have been applied; the ones here are idempotent (they
      // set the whole traffic split or version list), so repeating them is safe.
      const retryable = res.status === 429 || res.status >= 500;
      if (!retryable || attempt >= this.attempts) {
        throw new GcpHttpError(method, url, res.status, text);
      }
      await this.opts.clock.sleep(RETRY_BASE_MS * 2 ** (attempt - 1));
    }
  }
}

/** Google's error body is `{"error": {"message": ...}}`; fall back to the raw text. */
function apiMessage(body: string): string {
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed === "object" && parsed !== null && "error" in parsed) {
      const error: unknown = parsed.error;
      if (typeof error === "object" && error !== null && "message" in error) {
        return String(error.message);
      }
    }
  } catch {
    // not JSON
  }
  return body.slice(0, 500);
}

/**
 * The last segment of a resource name or URL ("projects/p/.../revisions/r" -> "r"), without a
 * query: the program names instance templates by `selfLinkUnique` (`...?uniqueId=<n>`), which
 * Compute Engine answers without the query.
 */
export function shortName(name: string): string {
  const path = name.split("?")[0]!;
  return path.slice(path.lastIndexOf("/") + 1);
}

/**
 * Whether two references name the same resource: a full URL
 * (https://www.googleapis.com/compute/v1/projects/...), a partial one (projects/...) or
 * global/... all compare by their path from `projects/` on.
 */
export function sameResource(a: string, b: string): boolean {
  const tail = (s: string) => {
    const path = s.split("?")[0]!;
    const at = path.indexOf("projects/");
    return at < 0 ? path : path.slice(at);
  };
  return tail(a) === tail(b);
}
