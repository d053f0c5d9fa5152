/** GcpBudget: thresholds, filters, channels, and what it refuses. */
import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import { setupPulumiMocks, within } from "../../support/pulumi";
import "../../support/pulumi-gcp-outputs";
import {
  GcpBudget,
  budgetAmount,
  budgetThresholdRules,
  validateBudgetArgs,
  type GcpBudgetArgs,
} from "../../../components/gcp/budget";

setupPulumiMocks({ stack: "test", region: "us-central1" });

const base: GcpBudgetArgs = {
  billingAccount: "01ABCD-23EF45-6789AB",
  project: "agent-dev-1",
  projectNumber: "111122223333",
  amount: 250.5,
  notificationChannelIds: ["projects/agent-dev-1/notificationChannels/1"],
};

test("custom thresholds, a label filter, no forecast alert", async () => {
  const b = new GcpBudget("custom", {
    ...base,
    thresholds: [0.9, 0.25],
    forecastAlert: false,
    labelFilter: { "pulumi-stack": "agent-dev" },
  });
  const inputs = (await within(b)).findOne(gcp.billing.Budget).inputs;
  expect(inputs.thresholdRules).toEqual([
    { thresholdPercent: 0.25, spendBasis: "CURRENT_SPEND" },
    { thresholdPercent: 0.9, spendBasis: "CURRENT_SPEND" },
  ]);
  expect(inputs.budgetFilter).toMatchObject({
    projects: ["projects/111122223333"],
    labels: { "pulumi-stack": "agent-dev" },
  });
  expect(inputs.amount.specifiedAmount).toEqual({
    currencyCode: "USD",
    units: "250",
    nanos: 500000000,
  });
  expect(inputs.allUpdatesRule!.monitoringNotificationChannels).toEqual(
    base.notificationChannelIds,
  );
});

test("budgetThresholdRules defaults to 50/80/100 % actual plus 100 % forecast", () => {
  expect(budgetThresholdRules()).toEqual([
    { thresholdPercent: 0.5, spendBasis: "CURRENT_SPEND" },
    { thresholdPercent: 0.8, spendBasis: "CURRENT_SPEND" },
    { thresholdPercent: 1.0, spendBasis: "CURRENT_SPEND" },
    { thresholdPercent: 1.0, spendBasis: "FORECASTED_SPEND" },
  ]);
});

test("budgetAmount splits units and nanos", () => {
  expect(budgetAmount(3000, "EUR")).toEqual({
    specifiedAmount: { currencyCode: "EUR", units: "3000", nanos: 0 },
  });
  expect(budgetAmount(0.25, "USD").specifiedAmount.nanos).toBe(250000000);
});

describe("validation says what to change", () => {
  test.each([
    [
      { billingAccount: "billingAccounts/01ABCD-23EF45-6789AB" },
      /is not a billing account id such as "012345-6789AB-CDEF01"/,
    ],
    [{ amount: 0 }, /amount 0 must be a positive number/],
    [
      { thresholds: [50, 80, 100] },
      /threshold 50 must be a fraction of the budget \(0.5 means 50 %\)/,
    ],
    [{ thresholds: [] }, /thresholds is empty/],
    [{ thresholds: [0.5, 0.5] }, /lists a value twice/],
    [
      { labelFilter: { a: "1", b: "2" } },
      /labelFilter has 2 labels, but a GCP budget filters on one label/,
    ],
    [
      { notificationChannelIds: ["1", "2", "3", "4", "5", "6"] },
      /6 notification channels given; a budget can mail at most 5/,
    ],
    [{ currencyCode: "usd" }, /currencyCode "usd" must be a three-letter ISO code/],
  ])("%j", (over, message) => {
    expect(validateBudgetArgs("b", { ...base, ...over })).toMatch(message);
  });

  test("valid arguments pass", () => {
    expect(validateBudgetArgs("b", base)).toBeUndefined();
  });

  test("the component throws a ResourceError and creates no budget", async () => {
    expect(() => new GcpBudget("bad", { ...base, amount: -1 })).toThrow(pulumi.ResourceError);
  });
});
