/**
 * The service as the entrypoints build it, on a cloud upstream, for test/app/upstream-*.test.ts:
 * test/support/service.ts's startService (createDeps from the validated configuration, the
 * catalog priced as the upstream's cloud charges, as buildApp charges with it), on real Postgres
 * (a database of its own) and Redis.
 */
import type { ModelCatalog } from "../../app/src/llm/models";
import type { UpstreamOverrides } from "../../app/src/llm/upstream";
import { sseEvents } from "../support/fake-bedrock";
import { startService, type RunningService } from "../support/service";
import { createTestDatabase } from "../support/services";

export interface CloudService extends RunningService {
  catalog: ModelCatalog;
}

export async function startCloudService(
  env: Record<string, string>,
  stores: { pg: string; redis: string },
  upstream: UpstreamOverrides,
): Promise<CloudService> {
  const db = await createTestDatabase(stores.pg);
  // No catalog of our own: a test that passed one would not see list prices charged on a cloud.
  const service = await startService(
    { BATCH_POLLER_ENABLED: "false", DATABASE_URL: db.url, REDIS_URL: stores.redis, ...env },
    { upstream },
  );
  const catalog = service.deps.catalog;
  if (!catalog) throw new Error("createDeps set no catalog");
  return {
    ...service,
    catalog,
    async close() {
      await service.close();
      await db.drop();
    },
  };
}

/** Every event of an SSE response, in order. */
export async function readSse(response: Response): Promise<Array<{ event: string; data: string }>> {
  const events: Array<{ event: string; data: string }> = [];
  for await (const e of sseEvents(response)) events.push(e);
  return events;
}
