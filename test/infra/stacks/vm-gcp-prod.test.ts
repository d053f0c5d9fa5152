/** Stack vm-gcp-prod: one render, the assertions every stack must pass and the whole policy pack. */
import { describeStack, sharedRender } from "../stack-assertions";
import { describeStackPolicies } from "../../policy/stack-policies";

const render = sharedRender("vm-gcp-prod");
describeStack("vm-gcp-prod", render);
describeStackPolicies("vm-gcp-prod", render);
