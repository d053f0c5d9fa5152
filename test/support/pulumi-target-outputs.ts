/** Computed outputs for the targets' resources; moved to `infra/plan/mock-outputs-targets.ts` (imported for its registrations). */
export * from "../../infra/plan/mock-outputs-targets";
