/**
 * Message batches (batch/service.ts has the life cycle):
 *
 *   POST   /v1/batches                 {requests: [{custom_id, params}]}: accept a batch
 *   GET    /v1/batches                 the caller's batches, newest first, a page at a time
 *   GET    /v1/batches/{id}            its status and counts
 *   GET    /v1/batches/{id}/results    its results, one JSON line per request (once it has ended)
 *   POST   /v1/batches/{id}/cancel     cancel it: `canceling`, then `ended`, unrun requests `canceled`
 *   DELETE /v1/batches/{id}            delete an ended batch and its results
 *
 * The same routes answer under /v1/messages/batches, where the official SDK's
 * `client.messages.batches.create / retrieve / list / cancel / delete / results` look for them, in
 * the shapes of its types (resources/messages/batches.d.ts: `MessageBatch`, a `Page` of them,
 * `DeletedMessageBatch`). A batch belongs to the user who created it: an unknown id, another
 * user's batch and a malformed id all get the same 404, and a list shows only the caller's own.
 */
import type { Hono } from "hono";
import { streamThroughHono } from "./stream-out";
import * as z from "zod";
import type { AppDeps } from "../deps";
import type { AppContext, AppEnv } from "../http";
import { readJson, setHeader } from "../http";
import { ApiError, badRequest, notFound } from "../errors";
import type { BatchService } from "../batch/service";
import { batchView, deletedView } from "../batch/view";
import type { BatchRecord } from "../store/types";
import { UpstreamError } from "../llm/types";
import { asApiError, failureLog, messagesRequestSchema } from "./messages";
import { nulMessage, nulPath } from "../json-limits";
import { checkModel } from "../llm/known-models";
import type { ModelCatalog } from "../llm/models";
import { combinedFacts, messageFacts, type RequestFacts } from "../request-facts";
import { requestFacts, type RouteChains } from "./chain";
import { pageFrom, pageQuery } from "./models";

const CUSTOM_ID = /^[a-zA-Z0-9_-]{1,64}$/;
const PREFIXES = ["/v1/batches", "/v1/messages/batches"] as const;

export function batchCreateSchema(maxRequests: number) {
  return z.strictObject({
    requests: z
      .array(
        z.strictObject({
          custom_id: z.string().regex(CUSTOM_ID, "must be 1 to 64 letters, digits, _ or -"),
          params: messagesRequestSchema,
        }),
      )
      .min(1, "must hold at least one request")
      .max(maxRequests, `must hold at most ${maxRequests} requests (BATCH_MAX_REQUESTS)`),
  });
}

/** A batch asks for the sum of its requests (answered later, but sent upstream now). */
export function batchFacts(body: unknown): RequestFacts {
  const requests =
    typeof body === "object" && body !== null && "requests" in body && Array.isArray(body.requests)
      ? body.requests
      : [];
  return combinedFacts(
    requests.map((r: unknown) =>
      messageFacts(typeof r === "object" && r !== null && "params" in r ? r.params : undefined),
    ),
  );
}

export function registerBatchRoutes(
  app: Hono<AppEnv>,
  deps: AppDeps,
  catalog: ModelCatalog,
  chains: RouteChains,
) {
  const batches = deps.batches;
  if (!batches) return;
  const schema = batchCreateSchema(deps.config.BATCH_MAX_REQUESTS);

  for (const prefix of PREFIXES) {
    app.post(prefix, chains.model(batchFacts), async (c) => {
      const body = await readJson(c, schema);
      const facts = await requestFacts(c);
      // Requests are kept in Postgres until they run, and Postgres cannot hold a NUL character.
      const nul = nulPath(body);
      if (nul !== null) throw badRequest(nulMessage(nul));
      const seen = new Set<string>();
      body.requests.forEach((r, i) => {
        checkModel(catalog, r.params.model, `requests.${i}.params.model`);
        if (seen.has(r.custom_id))
          throw badRequest(`requests.${i}.custom_id: duplicate custom_id "${r.custom_id}"`);
        seen.add(r.custom_id);
        if (r.params.stream === true)
          throw badRequest(`requests.${i}.params.stream: streaming is not supported in batches`);
      });
      let record: BatchRecord;
      try {
        record = await batches.create(
          c.get("userId"),
          body.requests.map((r, i) => ({ ...r, facts: facts.requests?.[i] })),
        );
      } catch (err) {
        // Upstream refusals keep their status; anything else is ours (500 from onError).
        if (err instanceof UpstreamError || err instanceof ApiError)
          throw asApiError(err, failureLog(c, deps));
        throw err;
      }
      return respond(c, record, prefix);
    });

    app.get(prefix, chains.plain(), async (c) => {
      const q = pageQuery(c);
      const page = await batches.list(c.get("userId"), {
        limit: q.limit,
        afterId: q.after_id,
        beforeId: q.before_id,
      });
      if (!page) {
        const [name, id] = q.after_id ? ["after_id", q.after_id] : ["before_id", q.before_id];
        throw badRequest(`${name}: no batch ${JSON.stringify(id?.slice(0, 100))}`);
      }
      return c.json(
        pageFrom(
          page.batches.map((b) => batchView(b, prefix)),
          page.hasMore,
        ),
      );
    });

    app.get(`${prefix}/:id`, chains.plain(), async (c) =>
      respond(c, await findBatch(c, batches), prefix),
    );

    app.post(`${prefix}/:id/cancel`, chains.plain(), async (c) => {
      const id = c.req.param("id");
      let record: BatchRecord | null;
      try {
        record = await batches.cancel(c.get("userId"), id);
      } catch (err) {
        if (err instanceof UpstreamError || err instanceof ApiError)
          throw asApiError(err, failureLog(c, deps));
        throw err;
      }
      if (!record) throw notFound(`batch ${JSON.stringify(id.slice(0, 100))} not found`);
      return respond(c, record, prefix);
    });

    app.delete(`${prefix}/:id`, chains.plain(), async (c) => {
      const id = c.req.param("id");
      const outcome = await batches.delete(c.get("userId"), id);
      if (outcome === "not_found")
        throw notFound(`batch ${JSON.stringify(id.slice(0, 100))} not found`);
      // The API's answer for a batch in progress (SDK docs of batches.delete: "Message Batches can
      // only be deleted once they've finished processing ... you must first cancel it").
      if (outcome === "not_ended")
        throw badRequest(
          `batch ${id} cannot be deleted while it is processing; cancel it first, then delete it once it has ended`,
        );
      return c.json(deletedView(id));
    });

    app.get(`${prefix}/:id/results`, chains.plain(), async (c) => {
      const batch = await findBatch(c, batches);
      if (batch.status !== "ended") {
        throw new ApiError(
          409,
          "conflict_error",
          `batch ${batch.id} has not ended yet; results are available once processing_status is "ended"`,
        );
      }
      if (batch.synthetic) setHeader(c, "x-agent-synthetic", "true");
      return streamThroughHono(
        c,
        async (out) => {
          for await (const chunk of batches.resultLines(batch.id)) {
            await out.write(chunk);
            if (out.aborted) return;
          }
        },
        "application/x-jsonl; charset=utf-8",
      );
    });
  }
}

function respond(c: AppContext, record: BatchRecord, prefix: string): Response {
  if (record.synthetic) setHeader(c, "x-agent-synthetic", "true");
  return c.json(batchView(record, prefix));
}

async function findBatch(c: AppContext, batches: BatchService): Promise<BatchRecord> {
  const id = c.req.param("id") ?? "";
  const batch = await batches.get(c.get("userId"), id);
  if (!batch) throw notFound(`batch ${JSON.stringify(id.slice(0, 100))} not found`);
  return batch;
}
