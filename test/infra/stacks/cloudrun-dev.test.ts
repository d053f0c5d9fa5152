/** Stack cloudrun-dev: one render, the assertions every stack must pass and the whole policy pack. */
import { describeStack, sharedRender } from "../stack-assertions";
import { describeStackPolicies } from "../../policy/stack-policies";

const render = sharedRender("cloudrun-dev");
describeStack("cloudrun-dev", render);
describeStackPolicies("cloudrun-dev", render);
