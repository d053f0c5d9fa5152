/** Stack vm-aws-dev: one render, the assertions every stack must pass and the whole policy pack. */
import { describeStack, sharedRender } from "../stack-assertions";
import { describeStackPolicies } from "../../policy/stack-policies";

const render = sharedRender("vm-aws-dev");
describeStack("vm-aws-dev", render);
describeStackPolicies("vm-aws-dev", render);
