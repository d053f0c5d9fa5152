/**
 * A monthly AWS cost budget for this stack's resources only, alerting at 50 %, 80 % and 100 %
 * of actual spend and at 100 % of forecast spend.
 *
 * The budget filters on a cost allocation tag that is unique per stack (see
 * `costAllocationTag` in components/tagging.ts). AWS only bills by a tag once it is activated
 * as a cost allocation tag in the payer account (Billing > Cost allocation tags); until then the
 * budget sees $0. `activateCostAllocationTag` does it from here when this account is the payer.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { checkEmail } from "./checks";

export interface BudgetArgs {
  /** Monthly limit in USD. */
  monthlyLimitUsd: number;
  /** The tag the budget counts, e.g. `{ key: "pulumi-stack", value: "agent-prod" }`. */
  costAllocationTag: { key: string; value: string };
  /** E-mail recipients (at most 10 per notification, an AWS limit). @default [] */
  alertEmails?: string[];
  /**
   * SNS topic for alerts (the monitoring alarm topic; its policy must admit budgets.amazonaws.com).
   * @default none
   */
  alarmTopicArn?: pulumi.Input<string>;
  /**
   * Percentages of actual spend that notify.
   * @default [50, 80, 100]
   */
  actualThresholds?: number[];
  /**
   * Percentages of forecast spend that notify.
   * @default [100]
   */
  forecastThresholds?: number[];
  /**
   * Activate the tag as a cost allocation tag. Only works in the payer (management) account, and
   * the tag key is account-wide: let exactly one stack own it.
   * @default false
   */
  activateCostAllocationTag?: boolean;
}

const DEFAULT_ACTUAL = [50, 80, 100];
const DEFAULT_FORECAST = [100];

/** `TagKeyValue` filter value: `user:<key>$<value>` is how Budgets names user-defined tags. */
export function tagFilterValue(tag: { key: string; value: string }): string {
  return `user:${tag.key}$${tag.value}`;
}

export interface BudgetNotificationSpec {
  notificationType: "ACTUAL" | "FORECASTED";
  threshold: number;
  thresholdType: "PERCENTAGE";
  comparisonOperator: "GREATER_THAN";
}

/** The notifications, ordered: actual ascending, then forecast ascending. */
export function budgetNotificationSpecs(
  actual: number[],
  forecast: number[],
): BudgetNotificationSpec[] {
  const spec = (notificationType: "ACTUAL" | "FORECASTED") => (threshold: number) => ({
    notificationType,
    threshold,
    thresholdType: "PERCENTAGE" as const,
    comparisonOperator: "GREATER_THAN" as const,
  });
  const sorted = (xs: number[]) => [...new Set(xs)].sort((a, b) => a - b);
  return [...sorted(actual).map(spec("ACTUAL")), ...sorted(forecast).map(spec("FORECASTED"))];
}

/** Problems with the args, each saying what to change. */
export function checkBudgetArgs(args: BudgetArgs): string[] {
  const problems: string[] = [];
  if (!(Number.isFinite(args.monthlyLimitUsd) && args.monthlyLimitUsd > 0)) {
    problems.push(`monthlyLimitUsd is ${args.monthlyLimitUsd}: set a positive amount.`);
  }
  const { key, value } = args.costAllocationTag;
  if (!key || !value || key.startsWith("aws:")) {
    problems.push(
      `costAllocationTag {key: "${key}", value: "${value}"} must name a user-defined tag with a value.`,
    );
  }
  const emails = args.alertEmails ?? [];
  if (emails.length > 10)
    problems.push(
      `alertEmails has ${emails.length} addresses: AWS Budgets allows 10; use the SNS topic for more.`,
    );
  for (const e of emails) {
    const p = checkEmail(e);
    if (p) problems.push(p);
  }
  if (emails.length === 0 && args.alarmTopicArn === undefined) {
    problems.push("a budget notification needs a subscriber: set alertEmails or alarmTopicArn.");
  }
  for (const t of [...(args.actualThresholds ?? []), ...(args.forecastThresholds ?? [])]) {
    if (!(t > 0 && t <= 1000)) problems.push(`threshold ${t} is not a percentage in (0, 1000].`);
  }
  const count =
    new Set(args.actualThresholds ?? DEFAULT_ACTUAL).size +
    new Set(args.forecastThresholds ?? DEFAULT_FORECAST).size;
  if (count > 5)
    problems.push(`${count} thresholds: AWS Budgets allows 5 notifications per budget; drop some.`);
  return problems;
}

/**
 * A cost budget with alerts. The first two budgets of an account are free, then $0.02/day each.
 */
export class Budget extends pulumi.ComponentResource {
  readonly budget: aws.budgets.Budget;

  constructor(name: string, args: BudgetArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:aws:Budget", name, {}, opts);
    const problems = checkBudgetArgs(args);
    if (problems.length > 0)
      throw new pulumi.ResourceError(`Budget "${name}": ${problems.join(" ")}`, this);

    const tag = args.activateCostAllocationTag
      ? this.activateTag(name, args.costAllocationTag.key)
      : undefined;
    this.budget = this.createBudget(name, args, tag);
    this.registerOutputs({ budgetName: this.budget.name });
  }

  private activateTag(name: string, key: string): aws.costexplorer.CostAllocationTag {
    return new aws.costexplorer.CostAllocationTag(
      `${name}-tag`,
      { tagKey: key, status: "Active" },
      { parent: this },
    );
  }

  private createBudget(name: string, args: BudgetArgs, tag?: pulumi.Resource): aws.budgets.Budget {
    const emails = args.alertEmails ?? [];
    const topics = args.alarmTopicArn === undefined ? [] : [args.alarmTopicArn];
    const notifications = budgetNotificationSpecs(
      args.actualThresholds ?? DEFAULT_ACTUAL,
      args.forecastThresholds ?? DEFAULT_FORECAST,
    ).map((n) => ({
      ...n,
      subscriberEmailAddresses: emails.length > 0 ? emails : undefined,
      subscriberSnsTopicArns: topics.length > 0 ? topics : undefined,
    }));
    return new aws.budgets.Budget(
      `${name}-budget`,
      {
        budgetType: "COST",
        timeUnit: "MONTHLY",
        limitAmount: args.monthlyLimitUsd.toFixed(2),
        limitUnit: "USD",
        costFilters: [{ name: "TagKeyValue", values: [tagFilterValue(args.costAllocationTag)] }],
        notifications,
      },
      { parent: this, dependsOn: tag ? [tag] : [] },
    );
  }
}
