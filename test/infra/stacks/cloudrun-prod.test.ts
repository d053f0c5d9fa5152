import { describeStack } from "../stack-assertions";

describeStack("cloudrun-prod");
