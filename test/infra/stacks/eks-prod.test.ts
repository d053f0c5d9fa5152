import { describeStack } from "../stack-assertions";

describeStack("eks-prod");
