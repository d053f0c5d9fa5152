/** Stack lambda-prod: one render, the assertions every stack must pass and the whole policy pack. */
import { describeStack, sharedRender } from "../stack-assertions";
import { describeStackPolicies } from "../../policy/stack-policies";

const render = sharedRender("lambda-prod");
describeStack("lambda-prod", render);
describeStackPolicies("lambda-prod", render);
