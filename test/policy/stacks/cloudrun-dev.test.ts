import { describeStackPolicies } from "../stack-policies";

describeStackPolicies("cloudrun-dev");
