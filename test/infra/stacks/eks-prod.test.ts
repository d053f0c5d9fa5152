/** Stack eks-prod: one render, the assertions every stack must pass and the whole policy pack. */
import { describeStack, sharedRender } from "../stack-assertions";
import { describeStackPolicies } from "../../policy/stack-policies";

const render = sharedRender("eks-prod");
describeStack("eks-prod", render);
describeStackPolicies("eks-prod", render);
