import { describeStackPolicies } from "../stack-policies";

describeStackPolicies("vm-aws-dev");
