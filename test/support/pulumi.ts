/**
 * The Pulumi mock harness. It lives in `infra/plan/mock-runtime.ts` because the offline plan
 * (`npm run plan`) runs programs under it too; tests import it from here.
 */
export * from "../../infra/plan/mock-runtime";
