/** Stack eks-dev: one render, the assertions every stack must pass and the whole policy pack. */
import { describeStack, sharedRender } from "../stack-assertions";
import { describeStackPolicies } from "../../policy/stack-policies";

const render = sharedRender("eks-dev");
describeStack("eks-dev", render);
describeStackPolicies("eks-dev", render);
