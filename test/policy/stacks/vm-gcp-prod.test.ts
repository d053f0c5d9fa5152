import { describeStackPolicies } from "../stack-policies";

describeStackPolicies("vm-gcp-prod");
