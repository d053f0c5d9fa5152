import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import {
  Budget,
  type BudgetArgs,
  budgetNotificationSpecs,
  checkBudgetArgs,
  tagFilterValue,
} from "../../../components/aws/budget";
import { resources, setupPulumiMocks, within } from "../../support/pulumi";

setupPulumiMocks({ stack: "test" });

const TAG = { key: "pulumi-stack", value: "agent-prod" };
const TOPIC = "arn:aws:sns:us-east-1:123456789012:alarms";

describe("pure functions", () => {
  test("tag filter uses the Budgets spelling of user tags", () => {
    expect(tagFilterValue(TAG)).toBe("user:pulumi-stack$agent-prod");
  });

  test("notifications: actual 50/80/100 and forecast 100, de-duplicated and ordered", () => {
    expect(
      budgetNotificationSpecs([100, 50, 80, 50], [100]).map(
        (n) => `${n.notificationType}:${n.threshold}`,
      ),
    ).toEqual(["ACTUAL:50", "ACTUAL:80", "ACTUAL:100", "FORECASTED:100"]);
    for (const n of budgetNotificationSpecs([50], []))
      expect(n).toMatchObject({ thresholdType: "PERCENTAGE", comparisonOperator: "GREATER_THAN" });
  });

  test.each<[Partial<BudgetArgs>, RegExp]>([
    [{ monthlyLimitUsd: 0 }, /monthlyLimitUsd is 0/],
    [{ costAllocationTag: { key: "aws:createdBy", value: "x" } }, /must name a user-defined tag/],
    [{ alertEmails: [], alarmTopicArn: undefined }, /needs a subscriber/],
    [{ alertEmails: ["x@"] }, /"x@" is not an e-mail address/],
    [{ alertEmails: Array.from({ length: 11 }, (_, i) => `p${i}@example.com`) }, /allows 10/],
    [{ actualThresholds: [10, 20, 30, 40, 50] }, /6 thresholds: AWS Budgets allows 5/],
    [{ forecastThresholds: [0] }, /threshold 0 is not a percentage/],
  ])("%j is refused", (override, message) => {
    const args: BudgetArgs = {
      monthlyLimitUsd: 100,
      costAllocationTag: TAG,
      alertEmails: ["a@example.com"],
      ...override,
    };
    expect(checkBudgetArgs(args).join(" ")).toMatch(message);
  });
});

let withBoth: Budget;
let topicOnly: Budget;

beforeAll(async () => {
  withBoth = new Budget("b1", {
    monthlyLimitUsd: 3000,
    costAllocationTag: TAG,
    alertEmails: ["a@example.com", "b@example.com"],
    alarmTopicArn: TOPIC,
    activateCostAllocationTag: true,
  });
  topicOnly = new Budget("b2", {
    monthlyLimitUsd: 199.5,
    costAllocationTag: TAG,
    alarmTopicArn: TOPIC,
  });
});

test("a monthly cost budget filtered on the stack's tag, alerting e-mails and the topic at every threshold", async () => {
  const q = await within(withBoth);
  const b = q.findOne(aws.budgets.Budget).inputs;
  expect(b).toMatchObject({
    budgetType: "COST",
    timeUnit: "MONTHLY",
    limitAmount: "3000.00",
    limitUnit: "USD",
  });
  expect(b.costFilters).toEqual([
    { name: "TagKeyValue", values: ["user:pulumi-stack$agent-prod"] },
  ]);
  expect(b.notifications).toEqual(
    [
      ["ACTUAL", 50],
      ["ACTUAL", 80],
      ["ACTUAL", 100],
      ["FORECASTED", 100],
    ].map(([notificationType, threshold]) => ({
      notificationType,
      threshold,
      thresholdType: "PERCENTAGE",
      comparisonOperator: "GREATER_THAN",
      subscriberEmailAddresses: ["a@example.com", "b@example.com"],
      subscriberSnsTopicArns: [TOPIC],
    })),
  );
});

test("activating the cost allocation tag is opt-in, and the budget waits for it", async () => {
  const q = await within(withBoth);
  const tag = q.findOne(aws.costexplorer.CostAllocationTag);
  expect(tag.inputs).toEqual({ tagKey: "pulumi-stack", status: "Active" });
  expect(q.findOne(aws.budgets.Budget).options.dependencies).toContain(tag.urn);
  expect((await within(topicOnly)).count(aws.costexplorer.CostAllocationTag)).toBe(0);
});

test("topic-only budgets send no e-mail list (AWS rejects empty lists)", async () => {
  const b = (await within(topicOnly)).findOne(aws.budgets.Budget).inputs;
  expect(b.limitAmount).toBe("199.50");
  for (const n of b.notifications ?? []) {
    expect(n.subscriberEmailAddresses).toBeUndefined();
    expect(n.subscriberSnsTopicArns).toEqual([TOPIC]);
  }
});

test("children are prefixed and parented", async () => {
  for (const r of (await within(withBoth)).all()) {
    expect(r.name.startsWith("b1-")).toBe(true);
    expect(resources.parentOf(r)!.name).toBe("b1");
  }
});

test("invalid args throw a ResourceError before anything is created", () => {
  expect(
    () => new Budget("bad", { monthlyLimitUsd: -1, costAllocationTag: TAG, alarmTopicArn: TOPIC }),
  ).toThrow(pulumi.ResourceError);
  expect(
    () => new Budget("bad", { monthlyLimitUsd: -1, costAllocationTag: TAG, alarmTopicArn: TOPIC }),
  ).toThrow(/Budget "bad": monthlyLimitUsd is -1: set a positive amount/);
});
