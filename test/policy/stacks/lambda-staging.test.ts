import { describeStackPolicies } from "../stack-policies";

describeStackPolicies("lambda-staging");
