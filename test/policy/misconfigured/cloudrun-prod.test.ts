import { describeMisconfigured, one, TEST_ANTHROPIC_KEY } from "./helper";

type Envs = Array<{ name: string; value?: string; valueSource?: unknown }>;
const container = (props: Record<string, unknown>) =>
  (props.template as { containers: Array<{ envs: Envs }> }).containers[0]!;

describeMisconfigured("cloudrun-prod", {
  "a public Cloud SQL instance": {
    apply: (rs) => {
      const ip = (
        one(rs, "gcp:sql/databaseInstance:DatabaseInstance").props.settings as {
          ipConfiguration: Record<string, unknown>;
        }
      ).ipConfiguration;
      Object.assign(ip, {
        ipv4Enabled: true,
        authorizedNetworks: [{ name: "anywhere", value: "0.0.0.0/0" }],
      });
    },
    expect: [
      {
        policy: "database-not-public",
        name: "agent-postgres-instance",
        message:
          /ipv4Enabled is true and 0.0.0.0\/0 is an authorized network: set ipv4Enabled: false/,
      },
    ],
  },
  "the Anthropic key as a plain Cloud Run env value": {
    apply: (rs) => {
      const c = container(one(rs, "gcp:cloudrunv2/service:Service").props);
      c.envs = c.envs.map((e) =>
        e.name === "ANTHROPIC_API_KEY" ? { name: e.name, value: TEST_ANTHROPIC_KEY } : e,
      );
    },
    expect: [
      {
        policy: "cloudrun-env-no-plaintext-secrets",
        name: "agent-service",
        message:
          /ANTHROPIC_API_KEY holds an Anthropic API key\. Remove it and create a Secret Manager secret and reference it with valueSource/,
      },
    ],
  },
  "unbounded scaling (no maximum instance count)": {
    apply: (rs) => {
      delete (
        one(rs, "gcp:cloudrunv2/service:Service").props.template as {
          scaling: Record<string, unknown>;
        }
      ).scaling.maxInstanceCount;
    },
    expect: [
      {
        policy: "cloudrun-max-instances",
        name: "agent-service",
        message: /No maximum instance count .*set template.scaling.maxInstanceCount to at most 100/,
      },
    ],
  },
  "a movable image tag": {
    apply: (rs) => {
      const c = container(one(rs, "gcp:cloudrunv2/service:Service").props) as unknown as {
        image: string;
      };
      c.image = "us-central1-docker.pkg.dev/acme-agent-dev/agent-image/agent:latest";
    },
    expect: [
      {
        policy: "images-pinned-by-digest",
        name: "agent-service",
        message: /containers\[0\].image ".*agent:latest" is not pinned by digest/,
      },
    ],
  },
});
