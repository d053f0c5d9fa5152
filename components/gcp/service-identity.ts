/**
 * The identity a GCP target's compute runs as (never the default compute account), its grants on
 * exactly the data plane's secrets, and the alert policies on its traffic.
 */
import { createHash } from "node:crypto";
import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import type { DataPlaneOutputs, SecretRef } from "../contracts";
import { ServiceAlerts, type ServiceAlertsArgs } from "./monitoring";
import { SecretAccessGrant } from "./secrets";
import { secretBindings } from "../runtime-env";

/**
 * The service account id: 6-30 characters, lowercase, starting with a letter. A short hash of
 * project, stack and component keeps two stacks sharing a project apart.
 */
export function serviceAccountId(componentName: string, project: string, stack: string): string {
  const base = componentName
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, "-")
    .replace(/-+/g, "-")
    .replace(/^[^a-z]+/, "");
  const hash = createHash("sha256")
    .update(`${project}/${stack}/${componentName}`)
    .digest("hex")
    .slice(0, 6);
  const head = (base || "agent").slice(0, 30 - 1 - hash.length).replace(/-+$/, "");
  return `${head.length >= 1 ? head : "agent"}-${hash}`.padEnd(6, "0");
}

/**
 * Binding keys for the data plane's secrets: the variable a secret feeds when it is one of the
 * service's three, else its position. Stable keys mean reordering never re-creates (and briefly
 * revokes) a binding.
 */
export function secretGrantKeys(dp: DataPlaneOutputs<"gcp">): Record<string, SecretRef<"gcp">> {
  const named = new Map<SecretRef<"gcp">, string>(
    secretBindings<"gcp">(dp).map((b) => [b.secret, b.variable.toLowerCase().replace(/_/g, "-")]),
  );
  const keys: Record<string, SecretRef<"gcp">> = {};
  dp.secrets.forEach((ref, i) => {
    const key = named.get(ref) ?? `secret-${i}`;
    keys[keys[key] ? `${key}-${i}` : key] = ref;
  });
  return keys;
}

/** Its own identity (never the default compute account), so what it may do is exactly what is granted. */
export function createGcpServiceAccount(
  parent: pulumi.Resource,
  name: string,
  project: string,
  about: { displayName: string; description: string },
): gcp.serviceaccount.Account {
  return new gcp.serviceaccount.Account(
    `${name}-sa`,
    { project, accountId: serviceAccountId(name, project, pulumi.getStack()), ...about },
    { parent },
  );
}

/** secretAccessor on exactly the data plane's secrets, one binding per secret. */
export function grantGcpSecretAccess(
  parent: pulumi.Resource,
  name: string,
  serviceAccount: gcp.serviceaccount.Account,
  dp: DataPlaneOutputs<"gcp">,
): SecretAccessGrant {
  return new SecretAccessGrant(
    `${name}-secret-access`,
    { serviceAccountEmail: serviceAccount.email, secrets: secretGrantKeys(dp) },
    { parent },
  );
}

/** Alert policies always exist (incidents show in the console); they notify the data plane's channels. */
export function createGcpServiceAlerts(
  parent: pulumi.Resource,
  name: string,
  dp: DataPlaneOutputs<"gcp">,
  alerts: Omit<ServiceAlertsArgs, "notificationChannelIds">,
): ServiceAlerts {
  return new ServiceAlerts(
    `${name}-alerts`,
    { ...alerts, notificationChannelIds: dp.monitoring.notificationChannelIds ?? [] },
    { parent },
  );
}
