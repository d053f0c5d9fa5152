import { createHash } from "node:crypto";

/** A piece of output text, told apart from the values still to be written. */
class Text {
  constructor(readonly text: string) {}
}

const OPEN_ARRAY = new Text("[");
const CLOSE_ARRAY = new Text("]");
const OPEN_OBJECT = new Text("{");
const CLOSE_OBJECT = new Text("}");
const COMMA = new Text(",");

/**
 * JSON with object keys sorted at every depth (undefined values left out), so equal requests hash
 * equally. Iterative, with an explicit stack: no nesting depth can overflow the call stack.
 */
export function canonicalJson(value: unknown): string {
  let out = "";
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const item = stack.pop();
    if (item instanceof Text) {
      out += item.text;
    } else if (item === null || typeof item !== "object") {
      out += JSON.stringify(item) ?? "null";
    } else if (Array.isArray(item)) {
      // Pushed in reverse: popped as [ a , b ].
      stack.push(CLOSE_ARRAY);
      for (let i = item.length - 1; i >= 0; i--) {
        stack.push(item[i]);
        if (i > 0) stack.push(COMMA);
      }
      stack.push(OPEN_ARRAY);
    } else {
      const obj = item as Record<string, unknown>;
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort();
      stack.push(CLOSE_OBJECT);
      for (let i = keys.length - 1; i >= 0; i--) {
        stack.push(obj[keys[i]!]);
        stack.push(new Text(`${i > 0 ? "," : ""}${JSON.stringify(keys[i])}:`));
      }
      stack.push(OPEN_OBJECT);
    }
  }
  return out;
}

/**
 * Cache key: tenant + model + hash of the canonical request. The tenant is part of the key,
 * so one tenant's cached answer can never be served to another.
 */
export function responseCacheKey(tenant: string, model: string, body: unknown): string {
  const digest = createHash("sha256").update(canonicalJson(body)).digest("base64url");
  return `agent:rc:v1:${createHash("sha256").update(tenant).digest("base64url").slice(0, 22)}:${model}:${digest}`;
}
