import { describeStackPolicies } from "../stack-policies";

describeStackPolicies("eks-prod");
