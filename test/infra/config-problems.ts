/** The problems a stack configuration is refused with; fails the test when it is accepted. */
import { parseStackConfig, StackConfigError, type RawStackConfig } from "../../infra/config";

export function problems(raw: RawStackConfig): string[] {
  try {
    parseStackConfig(raw);
  } catch (err) {
    if (err instanceof StackConfigError) return err.problems;
    throw err;
  }
  throw new Error("expected the configuration to be rejected");
}
