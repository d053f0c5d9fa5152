/**
 * Who may read a stack's releases from outside its account or project: the deployers of the
 * stacks that promote from it (`agent:promotionReaders`). The promoting stack copies the
 * release into storage of its own, so these grants are read-only and only needed at promotion.
 */

const AWS_ACCOUNT = /^\d{12}$/;
const AWS_PRINCIPAL_ARN = /^arn:aws[a-z-]*:iam::(\d{12}):(role|user)\/[\w+=,.@/-]+$/;
/**
 * IAM principal identifiers a GCP allow policy takes
 * (https://cloud.google.com/iam/docs/principal-identifiers).
 */
const GCP_MEMBER =
  /^(serviceAccount|user|group):[^\s@]+@[^\s@]+\.[a-z]{2,}$|^domain:[a-z0-9.-]+\.[a-z]{2,}$|^principal(Set)?:\/\/iam\.googleapis\.com\/\S+$/;

/** The IAM principal ARNs of AWS readers: an account id stands for the account's root. */
export function awsPrincipals(readers: readonly string[]): string[] {
  return readers.map((r) => (AWS_ACCOUNT.test(r) ? `arn:aws:iam::${r}:root` : r));
}

/** The AWS account a reader belongs to, or undefined for something that is not an AWS reader. */
export function awsReaderAccount(reader: string): string | undefined {
  if (AWS_ACCOUNT.test(reader)) return reader;
  return AWS_PRINCIPAL_ARN.exec(reader)?.[1];
}

/**
 * The GCP project a reader's identity lives in, when its name says so: a service account
 * (`<name>@<project>.iam.gserviceaccount.com`) or a workload identity pool principal in a
 * project (`principal://iam.googleapis.com/projects/<number>/...` names a number, not an id).
 */
export function gcpReaderProject(reader: string): string | undefined {
  return /^serviceAccount:[^@]+@([a-z][-a-z0-9]{4,28}[a-z0-9])\.iam\.gserviceaccount\.com$/.exec(
    reader,
  )?.[1];
}

/** Problems with `agent:promotionReaders` for a cloud, naming the key and what is accepted. */
export function readerProblems(
  cloud: "aws" | "gcp",
  readers: readonly string[],
  key = "agent:promotionReaders",
): string[] {
  return readers.flatMap((r, i) => {
    const ok = cloud === "aws" ? awsReaderAccount(r) !== undefined : GCP_MEMBER.test(r);
    if (ok) return [];
    return [
      cloud === "aws"
        ? `${key}[${i}] "${r}" is neither an AWS account id (12 digits) nor an IAM role or user ARN (arn:aws:iam::<account>:role/<name>)`
        : `${key}[${i}] "${r}" is not an IAM principal: use serviceAccount:<email>, group:<email>, user:<email>, domain:<domain> or a principal:// / principalSet:// identifier`,
    ];
  });
}
