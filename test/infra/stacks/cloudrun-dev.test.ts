import { describeStack } from "../stack-assertions";

describeStack("cloudrun-dev");
