/**
 * LOG_PROMPTS=true: one log line per model answer with the prompt and the completion text
 * (`msg: "prompt"`, with the request id, user, model and where it came from). Off by default:
 * prompts can hold personal data. Each text is cut at MAX_LOGGED_CHARS so a 1 MB prompt cannot
 * flood the log pipeline. Off, nothing here runs and no prompt text reaches a log line.
 */
import type { Logger } from "pino";

const MAX_LOGGED_CHARS = 16_384;

export interface PromptLogEntry {
  requestId: string;
  userId: string;
  model: string;
  /** "messages", "session". */
  route: string;
  system?: unknown;
  /** The messages sent (the conversation, for a session turn). */
  messages: unknown;
  /** The answer's text (text blocks joined; tool calls as JSON). */
  completion: string;
}

function clip(text: string): string {
  return text.length > MAX_LOGGED_CHARS
    ? `${text.slice(0, MAX_LOGGED_CHARS)}... [${text.length - MAX_LOGGED_CHARS} more characters]`
    : text;
}

export function logPrompt(logger: Pick<Logger, "info">, entry: PromptLogEntry): void {
  const { system, messages, completion, ...ids } = entry;
  logger.info(
    {
      ...ids,
      ...(system !== undefined
        ? { system: clip(typeof system === "string" ? system : JSON.stringify(system)) }
        : {}),
      prompt: clip(JSON.stringify(messages)),
      completion: clip(completion),
    },
    "prompt",
  );
}

/** The text of an answer's content blocks: text as is, tool calls as their JSON input. */
export function completionText(content: ReadonlyArray<Record<string, unknown>>): string {
  return content
    .map((b) =>
      b.type === "text"
        ? String(b.text ?? "")
        : b.type === "tool_use"
          ? `[tool_use ${String(b.name)} ${JSON.stringify(b.input)}]`
          : "",
    )
    .filter(Boolean)
    .join("\n");
}
