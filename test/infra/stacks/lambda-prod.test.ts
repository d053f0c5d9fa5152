import { describeStack } from "../stack-assertions";

describeStack("lambda-prod");
