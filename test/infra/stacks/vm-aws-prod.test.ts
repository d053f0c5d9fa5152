/** Stack vm-aws-prod: one render, the assertions every stack must pass and the whole policy pack. */
import { describeStack, sharedRender } from "../stack-assertions";
import { describeStackPolicies } from "../../policy/stack-policies";

const render = sharedRender("vm-aws-prod");
describeStack("vm-aws-prod", render);
describeStackPolicies("vm-aws-prod", render);
