import { describeStack } from "../stack-assertions";

describeStack("vm-gcp-prod");
