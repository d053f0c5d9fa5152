/**
 * A public ACM certificate for one host name, validated through DNS records this component
 * writes into the Route 53 hosted zone that holds the name. ACM keeps such a certificate renewed
 * as long as the validation record stays
 * (https://docs.aws.amazon.com/acm/latest/userguide/dns-validation.html). Load balancers reject
 * a certificate that is still PENDING_VALIDATION, so `certificateArn` resolves only once ACM has
 * issued it (`CertificateValidation` waits).
 *
 * Free (public ACM certificates); the Route 53 records cost nothing beyond the zone ($0.50/month,
 * which the user already has).
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { DOMAIN } from "../targets/service";

export interface DnsValidatedCertificateArgs {
  /** The host name, e.g. `agent.example.com`. */
  domain: string;
  /** The Route 53 hosted zone id (`Z...`) that holds `domain`. */
  hostedZoneId: pulumi.Input<string>;
}

/** Problems with the args, each saying what to change. Pure. */
export function checkCertificateArgs(args: DnsValidatedCertificateArgs): string[] {
  const problems: string[] = [];
  if (!DOMAIN.test(args.domain)) {
    problems.push(
      `domain "${args.domain}" is not a lowercase DNS name such as "agent.example.com".`,
    );
  }
  if (typeof args.hostedZoneId === "string" && !/^Z[A-Z0-9]{1,31}$/.test(args.hostedZoneId)) {
    problems.push(`hostedZoneId "${args.hostedZoneId}" is not a Route 53 hosted zone id (Z...).`);
  }
  return problems;
}

export class DnsValidatedCertificate extends pulumi.ComponentResource {
  /** The issued certificate: resolves once validation has succeeded. */
  readonly certificateArn: pulumi.Output<string>;
  readonly certificate: aws.acm.Certificate;
  readonly validationRecord: aws.route53.Record;
  readonly validation: aws.acm.CertificateValidation;

  constructor(
    name: string,
    args: DnsValidatedCertificateArgs,
    opts?: pulumi.ComponentResourceOptions,
  ) {
    super("agent:aws:DnsValidatedCertificate", name, {}, opts);
    const problems = checkCertificateArgs(args);
    if (problems.length)
      throw new pulumi.ResourceError(
        `DnsValidatedCertificate "${name}": ${problems.join(" ")}`,
        this,
      );

    this.certificate = new aws.acm.Certificate(
      `${name}-cert`,
      { domainName: args.domain, validationMethod: "DNS", keyAlgorithm: "EC_prime256v1" },
      // A replacement must exist before the listener lets go of the old one.
      { parent: this, deleteBeforeReplace: false },
    );
    const option = this.certificate.domainValidationOptions.apply((options) => {
      const o = options.find((x) => x.domainName === args.domain) ?? options[0];
      if (!o?.resourceRecordName || !o.resourceRecordValue || !o.resourceRecordType) {
        throw new Error(`ACM returned no DNS validation record for ${args.domain}`);
      }
      return o;
    });
    this.validationRecord = new aws.route53.Record(
      `${name}-validation`,
      {
        zoneId: args.hostedZoneId,
        name: option.apply((o) => o.resourceRecordName!),
        type: option.apply((o) => o.resourceRecordType!),
        records: [option.apply((o) => o.resourceRecordValue!)],
        ttl: 300,
        // The same record validates a re-created certificate for the same name.
        allowOverwrite: true,
      },
      { parent: this },
    );
    this.validation = new aws.acm.CertificateValidation(
      `${name}-validated`,
      {
        certificateArn: this.certificate.arn,
        validationRecordFqdns: [this.validationRecord.fqdn],
      },
      { parent: this },
    );
    this.certificateArn = this.validation.certificateArn;
    this.registerOutputs({ certificateArn: this.certificateArn });
  }
}
