import * as pulumi from "@pulumi/pulumi";
import * as gcp from "@pulumi/gcp";
import { checkProjectId, joinProblems } from "./naming";

/** Alert at half, most, and all of the budget; warn early when the forecast crosses it. */
export const DEFAULT_BUDGET_THRESHOLDS = [0.5, 0.8, 1.0];

/** Budgets can mail at most five monitoring channels. */
export const MAX_BUDGET_CHANNELS = 5;

export interface GcpBudgetArgs {
  /** Billing account id, `XXXXXX-XXXXXX-XXXXXX`. */
  billingAccount: string;
  /** Project whose spend counts. */
  project: string;
  /**
   * The project's number (budgets filter on numbers). Looked up from `project` when omitted.
   * @default looked up with `gcp.organizations.getProject`
   */
  projectNumber?: pulumi.Input<string>;
  /** The budget's name in the billing console (at most 60 characters). @default the component name */
  displayName?: string;
  /** Monthly amount, in the billing account's currency. */
  amount: number;
  /**
   * Must equal the billing account's currency.
   * @default "USD"
   */
  currencyCode?: string;
  /**
   * Narrow the budget to resources with this one label (GCP budgets accept a single pair).
   * @default no label filter
   */
  labelFilter?: Record<string, string>;
  /**
   * Fractions of the amount that alert on actual spend.
   * @default [0.5, 0.8, 1.0]
   */
  thresholds?: number[];
  /**
   * Also alert when forecasted spend crosses 100 %.
   * @default true
   */
  forecastAlert?: boolean;
  /** Monitoring notification channels to mail (at most 5). */
  notificationChannelIds: pulumi.Input<string>[];
}

/** Threshold rules for the budget: actual spend at each fraction, plus forecasted 100 %. */
export function budgetThresholdRules(
  thresholds: number[] = DEFAULT_BUDGET_THRESHOLDS,
  forecast = true,
): { thresholdPercent: number; spendBasis: "CURRENT_SPEND" | "FORECASTED_SPEND" }[] {
  const rules = [...thresholds]
    .sort((a, b) => a - b)
    .map((t) => ({ thresholdPercent: t, spendBasis: "CURRENT_SPEND" as const }));
  return forecast
    ? [...rules, { thresholdPercent: 1.0, spendBasis: "FORECASTED_SPEND" as const }]
    : rules;
}

/** The budget API wants whole units as a string and the rest in nanos. */
export function budgetAmount(amount: number, currencyCode: string) {
  const units = Math.floor(amount);
  const nanos = Math.round((amount - units) * 1e9);
  return { specifiedAmount: { currencyCode, units: String(units), nanos } };
}

export function validateBudgetArgs(name: string, args: GcpBudgetArgs): string | undefined {
  const thresholds = args.thresholds ?? DEFAULT_BUDGET_THRESHOLDS;
  const labels = Object.entries(args.labelFilter ?? {});
  return joinProblems(`GcpBudget "${name}"`, [
    /^[0-9A-F]{6}-[0-9A-F]{6}-[0-9A-F]{6}$/.test(args.billingAccount)
      ? undefined
      : `billingAccount "${args.billingAccount}" is not a billing account id such as "012345-6789AB-CDEF01" (see gcloud billing accounts list).`,
    checkProjectId(args.project),
    Number.isFinite(args.amount) && args.amount > 0
      ? undefined
      : `amount ${args.amount} must be a positive number.`,
    /^[A-Z]{3}$/.test(args.currencyCode ?? "USD")
      ? undefined
      : `currencyCode "${args.currencyCode}" must be a three-letter ISO code such as "USD".`,
    thresholds.length > 0
      ? undefined
      : "thresholds is empty: give at least one, e.g. [0.5, 0.8, 1.0].",
    ...thresholds.map((t) =>
      t > 0 && t <= 10
        ? undefined
        : `threshold ${t} must be a fraction of the budget (0.5 means 50 %), between 0 and 10.`,
    ),
    new Set(thresholds).size === thresholds.length
      ? undefined
      : "thresholds lists a value twice: list each once.",
    labels.length <= 1
      ? undefined
      : `labelFilter has ${labels.length} labels, but a GCP budget filters on one label: keep one (e.g. the stack label).`,
    args.notificationChannelIds.length <= MAX_BUDGET_CHANNELS
      ? undefined
      : `${args.notificationChannelIds.length} notification channels given; a budget can mail at most ${MAX_BUDGET_CHANNELS}: shorten alertEmails.`,
  ]);
}

/**
 * A monthly Cloud Billing budget on the stack's project (and label), alerting at 50 %, 80 % and
 * 100 % of actual spend and at 100 % of forecast, to the stack's monitoring channels.
 *
 * Cost: free. A budget only alerts; it never stops spending.
 */
export class GcpBudget extends pulumi.ComponentResource {
  public readonly budget: gcp.billing.Budget;

  constructor(name: string, args: GcpBudgetArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent:gcp:Budget", name, {}, opts);
    const problem = validateBudgetArgs(name, args);
    if (problem) throw new pulumi.ResourceError(problem, this);

    const projectNumber =
      args.projectNumber ??
      gcp.organizations.getProjectOutput({ projectId: args.project }, { parent: this }).number;
    this.budget = new gcp.billing.Budget(
      `${name}-budget`,
      {
        billingAccount: args.billingAccount,
        displayName: (args.displayName ?? name).slice(0, 60),
        amount: budgetAmount(args.amount, args.currencyCode ?? "USD"),
        budgetFilter: {
          projects: [pulumi.interpolate`projects/${projectNumber}`],
          labels: args.labelFilter,
          calendarPeriod: "MONTH",
          creditTypesTreatment: "INCLUDE_ALL_CREDITS",
        },
        thresholdRules: budgetThresholdRules(args.thresholds, args.forecastAlert ?? true),
        allUpdatesRule: {
          monitoringNotificationChannels: args.notificationChannelIds,
          // Billing admins keep getting the default mails too.
          disableDefaultIamRecipients: false,
        },
      },
      { parent: this },
    );
    this.registerOutputs({ budgetName: this.budget.name });
  }
}
