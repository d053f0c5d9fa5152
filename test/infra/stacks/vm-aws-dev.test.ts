import { describeStack } from "../stack-assertions";

describeStack("vm-aws-dev");
