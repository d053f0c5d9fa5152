import { describeMisconfigured, one, TEST_ANTHROPIC_KEY } from "./helper";

describeMisconfigured("lambda-prod", {
  "a public database": {
    apply: (rs) =>
      Object.assign(one(rs, "aws:rds/instance:Instance").props, { publiclyAccessible: true }),
    expect: [
      {
        policy: "database-not-public",
        name: "agent-pg-db",
        message: /^publiclyAccessible is true: set it to false/,
      },
    ],
  },
  "the Anthropic key in plaintext in the Lambda environment": {
    apply: (rs) => {
      const vars = (
        one(rs, "aws:lambda/function:Function").props.environment as {
          variables: Record<string, string>;
        }
      ).variables;
      delete vars.ANTHROPIC_API_KEY_SECRET;
      vars.ANTHROPIC_API_KEY = TEST_ANTHROPIC_KEY;
    },
    expect: [
      {
        policy: "lambda-env-no-plaintext-secrets",
        name: "agent-function",
        message:
          /^environment.variables: ANTHROPIC_API_KEY holds an Anthropic API key\. Remove it and store it in Secrets Manager/,
      },
    ],
  },
  "unbounded scaling (no reserved concurrency)": {
    apply: (rs) => {
      delete one(rs, "aws:lambda/function:Function").props.reservedConcurrentExecutions;
    },
    expect: [
      {
        policy: "lambda-reserved-concurrency",
        name: "agent-function",
        message: /reservedConcurrentExecutions is unset \(unreserved: .*set it between 1 and 1000/,
      },
    ],
  },
  "an unencrypted Redis without AUTH": {
    apply: (rs) => {
      const rg = one(rs, "aws:elasticache/replicationGroup:ReplicationGroup").props;
      Object.assign(rg, { transitEncryptionEnabled: false, atRestEncryptionEnabled: false });
      delete rg.transitEncryptionMode;
      delete rg.authToken;
    },
    expect: [
      {
        policy: "redis-tls-and-auth",
        name: "agent-cache-redis",
        message: /transitEncryptionEnabled: true/,
      },
      {
        policy: "redis-tls-and-auth",
        name: "agent-cache-redis",
        message: /No authToken and no userGroupIds/,
      },
      {
        policy: "redis-encrypted-at-rest",
        name: "agent-cache-redis",
        message: /atRestEncryptionEnabled: true/,
      },
    ],
  },
  "a budget alerting only at 100 %": {
    apply: (rs) => {
      const b = one(rs, "aws:budgets/budget:Budget").props as {
        notifications: Array<{ threshold: number }>;
      };
      b.notifications = b.notifications.filter((n) => n.threshold === 100);
    },
    expect: [
      {
        policy: "budget-alerts",
        name: "agent-budget-budget",
        message: /does not alert on actual spend at 50, 80 %/,
      },
    ],
  },
});
