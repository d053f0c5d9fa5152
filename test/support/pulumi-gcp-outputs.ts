/** Computed outputs for GCP resources; moved to `infra/plan/mock-outputs-gcp.ts` (imported for its registrations). */
export * from "../../infra/plan/mock-outputs-gcp";
