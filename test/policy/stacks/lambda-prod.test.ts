import { describeStackPolicies } from "../stack-policies";

describeStackPolicies("lambda-prod");
