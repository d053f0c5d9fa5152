/**
 * Model ids a request may name: the table's models (dated snapshots included), `auto` and the
 * tier aliases, or any id when the table allows pass-through (`passThroughUnknownModels`). Anything
 * else is a 400 naming the known ones, before anything is held, cached or sent: a made-up id
 * would otherwise be priced, retried, given a breaker and a metric label of its own.
 */
import { badRequest } from "../errors";
import type { ModelCatalog } from "./models";
import { AUTO_MODEL, isRoutingAlias, TIER_ALIASES } from "./router";

export function checkModel(catalog: ModelCatalog, model: string, field = "model"): void {
  if (isRoutingAlias(model) || catalog.get(model) || catalog.table.passThroughUnknownModels) return;
  const shown = model.length > 64 ? `${model.slice(0, 64)}...` : model;
  throw badRequest(
    `${field}: unknown model ${JSON.stringify(shown)}; use one of ${catalog.ids.join(", ")} ` +
      `(or ${[AUTO_MODEL, ...TIER_ALIASES].join(", ")})`,
  );
}
