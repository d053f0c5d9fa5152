/**
 * Writes `config/<env>.json` from the rules' levels and thresholds:
 * `npx tsx infra/policy/config/generate.ts`. A test fails when the files and the rules drift.
 */
import { writeFileSync } from "node:fs";
import * as path from "node:path";
import { ENVIRONMENTS, policyConfigFor } from "../config";

export function renderConfigFile(env: (typeof ENVIRONMENTS)[number]): string {
  return `${JSON.stringify(policyConfigFor(env), null, 2)}\n`;
}

if (require.main === module) {
  for (const env of ENVIRONMENTS) {
    const file = path.join(__dirname, `${env}.json`);
    writeFileSync(file, renderConfigFile(env));
    console.log(`wrote ${path.relative(process.cwd(), file)}`);
  }
}
