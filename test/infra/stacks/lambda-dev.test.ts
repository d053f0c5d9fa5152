/** Stack lambda-dev: one render, the assertions every stack must pass and the whole policy pack. */
import { describeStack, sharedRender } from "../stack-assertions";
import { describeStackPolicies } from "../../policy/stack-policies";

const render = sharedRender("lambda-dev");
describeStack("lambda-dev", render);
describeStackPolicies("lambda-dev", render);
