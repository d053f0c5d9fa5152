/** Renders a stack file under mocks; moved to `infra/plan/render.ts`, shared with `npm run plan`. */
export * from "../../infra/plan/render";
