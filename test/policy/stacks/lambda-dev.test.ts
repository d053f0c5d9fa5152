import { describeStackPolicies } from "../stack-policies";

describeStackPolicies("lambda-dev");
