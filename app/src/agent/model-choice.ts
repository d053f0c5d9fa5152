/**
 * Which model runs a session's turn. Kept in one function so that model routing (by task,
 * budget or availability) has a single place to change.
 */
import type { AppConfig } from "../config";
import type { Session } from "../store/types";

/** The session's own model when it names one, else the service default. */
export function chooseSessionModel(
  session: Pick<Session, "model">,
  config: Pick<AppConfig, "DEFAULT_MODEL">,
): string {
  return session.model ?? config.DEFAULT_MODEL;
}
