/** Stack vm-gcp-dev: one render, the assertions every stack must pass and the whole policy pack. */
import { describeStack, sharedRender } from "../stack-assertions";
import { describeStackPolicies } from "../../policy/stack-policies";

const render = sharedRender("vm-gcp-dev");
describeStack("vm-gcp-dev", render);
describeStackPolicies("vm-gcp-dev", render);
