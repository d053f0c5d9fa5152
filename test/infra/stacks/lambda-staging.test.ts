/** Stack lambda-staging: one render, the assertions every stack must pass and the whole policy pack. */
import { describeStack, sharedRender } from "../stack-assertions";
import { describeStackPolicies } from "../../policy/stack-policies";

const render = sharedRender("lambda-staging");
describeStack("lambda-staging", render);
describeStackPolicies("lambda-staging", render);
