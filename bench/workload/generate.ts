/**
 * Writes bench/workload/reference.json, the reference workload of the cost scenario, from the
 * material below with a fixed seed: the same file on every run, so cost figures compare across
 * commits. Regenerate after editing: `npx tsx bench/workload/generate.ts`.
 *
 * The workload is a customer-support assistant for a (fictional) cloud storage product, the
 * kind of agent the service exists for:
 * - one system prompt carrying the product knowledge base (plans, regions, limits, error codes,
 *   policies, FAQ, playbooks), about 3,000 tokens, resent with every call as such agents do;
 * - multi-turn sessions (the client resends the conversation each turn, as with the Messages API);
 * - many sessions open with the same frequently asked question, word for word, and some users
 *   ask a question again later in the same session;
 * - a mix of simple requests (lookups: short answers) and complex ones (comparisons, planning,
 *   debugging: long answers), about 60/40.
 * Reply lengths are set per turn with the fake upstream's `[[fake:{"minReplyChars":N}]]`
 * directive, so both runs of the cost scenario get the same answers.
 */
import { writeFileSync } from "node:fs";
import path from "node:path";

export interface WorkloadTurn {
  text: string;
  kind: "simple" | "complex";
  maxTokens: number;
  replyChars: number;
  /** Why this turn is here: "faq-opener", "repeat", "follow-up", "opener". */
  role: string;
}
export interface Workload {
  name: string;
  description: string;
  /** The model a naive integration would call for everything: the capable default tier. */
  naiveModel: string;
  system: string;
  sessions: Array<{ id: string; turns: WorkloadTurn[] }>;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PLANS = [
  {
    name: "Starter",
    price: "$6 per user per month",
    storage: "1 TB pooled",
    users: "up to 10",
    versions: "30 days",
    support: "email, 2 business days",
    api: "60 requests/min",
  },
  {
    name: "Team",
    price: "$12 per user per month",
    storage: "5 TB pooled plus 1 TB per user",
    users: "3 to 250",
    versions: "90 days",
    support: "email and chat, 8 business hours",
    api: "600 requests/min",
  },
  {
    name: "Business",
    price: "$20 per user per month",
    storage: "unlimited (fair use above 50 TB per 10 users)",
    users: "10 to 2,500",
    versions: "1 year",
    support: "24/7 chat and phone, 1-hour response for severity 1",
    api: "3,000 requests/min",
  },
  {
    name: "Enterprise",
    price: "custom, annual contracts only",
    storage: "unlimited",
    users: "500 and more",
    versions: "custom up to 10 years",
    support: "named technical account manager, 15-minute severity 1 response",
    api: "custom",
  },
];
const REGIONS = [
  [
    "us-east",
    "Virginia, USA",
    "general availability; default for accounts created in the Americas",
  ],
  ["us-west", "Oregon, USA", "general availability"],
  ["ca-central", "Montreal, Canada", "general availability; Canadian data residency"],
  ["sa-east", "São Paulo, Brazil", "general availability; LGPD data processing addendum available"],
  [
    "eu-west",
    "Dublin, Ireland",
    "general availability; EU data residency; default for accounts created in Europe",
  ],
  ["eu-central", "Frankfurt, Germany", "general availability; EU data residency; C5 attestation"],
  [
    "eu-north",
    "Stockholm, Sweden",
    "general availability; EU data residency; lowest-carbon region",
  ],
  ["uk-south", "London, United Kingdom", "general availability; UK data residency"],
  ["ap-south", "Mumbai, India", "general availability"],
  [
    "ap-southeast",
    "Singapore",
    "general availability; default for accounts created in Asia-Pacific",
  ],
  ["ap-northeast", "Tokyo, Japan", "general availability"],
  ["au-east", "Sydney, Australia", "general availability; IRAP assessed"],
];
const LIMITS = [
  ["largest single file", "5 TB through the API (multipart), 100 GB through the web app"],
  ["parts in a multipart upload", "10,000, each 5 MB to 5 GB except the last"],
  ["files per folder shown in the web app", "100,000 (the API lists any number, 1,000 per page)"],
  ["path length", "1,024 bytes of UTF-8"],
  ["share links per account", "unlimited; each link can expire after 1 to 365 days"],
  ["external collaborators", "Starter 5, Team 100, Business and Enterprise unlimited"],
  ["concurrent sessions per user", "10 devices; the oldest session is signed out"],
  ["API tokens per user", "25 active tokens"],
  ["webhook endpoints per account", "Starter 2, Team 10, Business 50, Enterprise 200"],
  ["webhook retries", "8 attempts over 24 hours with exponential backoff"],
  ["audit log retention", "Team 90 days, Business 1 year, Enterprise 7 years"],
  ["sync client bandwidth cap", "configurable, default unlimited"],
  ["trash retention", "30 days on every plan, then permanent deletion after a 7-day grace period"],
  ["version history", "see plan table; versions count against storage"],
  [
    "egress included",
    "Starter none, Team 1x stored volume per month, Business 2x, Enterprise custom",
  ],
  ["egress price beyond the allowance", "$0.02 per GB"],
  ["legal holds", "Business and Enterprise; unlimited holds"],
  ["SSO", "SAML and OIDC on Business and Enterprise; Google and Microsoft sign-in on every plan"],
  ["SCIM provisioning", "Business and Enterprise"],
  [
    "customer-managed keys",
    "Enterprise only, through AWS KMS, Google Cloud KMS or Azure Key Vault",
  ],
];
const ERRORS = [
  [
    "NW-400",
    "malformed request",
    "check the JSON body and required fields against the API reference",
  ],
  [
    "NW-401",
    "missing or expired token",
    "create a new API token or sign in again; tokens expire after 90 days unless set otherwise",
  ],
  [
    "NW-403",
    "permission denied",
    "the user's role lacks the permission; an owner or admin can grant it in Admin > Roles",
  ],
  [
    "NW-404",
    "file or folder not found",
    "the item was moved, deleted or the path is misspelt; check the trash",
  ],
  [
    "NW-409",
    "conflict",
    "another client changed the item; fetch the latest version and retry with its ETag",
  ],
  ["NW-412", "precondition failed", "the If-Match ETag no longer matches; refresh and retry"],
  ["NW-413", "file too large", "use multipart upload above 100 GB, or split the file"],
  [
    "NW-422",
    "unsupported file name",
    "names cannot contain control characters or end with a space or a dot",
  ],
  [
    "NW-429",
    "rate limited",
    "wait for the time in Retry-After; the limit depends on the plan (see plan table)",
  ],
  [
    "NW-451",
    "blocked by policy",
    "an admin's data loss prevention rule blocked the action; ask the admin",
  ],
  [
    "NW-460",
    "storage quota exceeded",
    "delete files, empty the trash, or upgrade; uploads resume once below quota",
  ],
  [
    "NW-470",
    "legal hold",
    "items under legal hold cannot be deleted or modified until the hold is released",
  ],
  [
    "NW-480",
    "region mismatch",
    "the account's data residency region does not allow this operation from another region",
  ],
  [
    "NW-500",
    "internal error",
    "retry with backoff; if it persists for more than 15 minutes check status.northwind.example",
  ],
  ["NW-502", "upstream storage error", "transient; retry with backoff"],
  [
    "NW-503",
    "maintenance",
    "scheduled maintenance windows are announced 7 days ahead; retry after the window",
  ],
  [
    "NW-504",
    "timeout",
    "the operation took too long; use multipart for large uploads and paginate long listings",
  ],
  [
    "NW-520",
    "sync client out of date",
    "update the desktop client; versions older than 12 months are blocked",
  ],
  [
    "NW-530",
    "device not approved",
    "the account requires device approval; an admin approves it in Admin > Devices",
  ],
  [
    "NW-540",
    "key unavailable",
    "the customer-managed key is disabled or unreachable; check the key in your KMS",
  ],
];
const POLICIES = [
  "Refunds: monthly plans can be cancelled at any time and are not refunded for the current month. Annual plans cancelled within 30 days of purchase or renewal are refunded in full; after 30 days, the unused months are credited to the account, not refunded, unless local law requires a refund.",
  "Downgrades take effect at the end of the billing period. If stored data exceeds the lower plan's quota, uploads are blocked (NW-460) until usage is reduced; nothing is deleted.",
  "Service level: 99.9 % monthly uptime on Team, 99.95 % on Business, 99.99 % on Enterprise. Credits: 10 % of the monthly fee below the target, 25 % below 99.0 %, 50 % below 95.0 %. Credits must be requested within 30 days of the incident.",
  "Data retention after cancellation: files stay readable for 30 days, then are deleted within 60 days. Backups are purged within a further 35 days. Export with the Data Export tool before cancelling.",
  "Security: data is encrypted at rest with AES-256 and in transit with TLS 1.2 or later. Northwind holds SOC 2 Type II and ISO 27001 certifications; reports are available under NDA from the Trust Center.",
  "Privacy: Northwind is a processor under GDPR; the Data Processing Addendum is part of the terms. Sub-processors are listed in the Trust Center with 30 days' notice of changes.",
  "Account recovery: password resets are sent to the verified email. If two-factor authentication is lost, recovery codes can be used; otherwise an admin can reset 2FA for users, and owners must contact support with proof of identity.",
  "Abuse: accounts hosting malware or content that violates the acceptable use policy are suspended; appeals go to abuse@northwind.example.",
  "Migration assistance: Business and Enterprise customers moving more than 10 TB get free migration tooling and a migration engineer; egress from the previous provider is not covered.",
  "Education and non-profit discounts: 40 % off Team and Business with proof of status, applied at the next renewal.",
];
const FAQ: Array<[string, string]> = [
  [
    "How do I reset my password?",
    "Use 'Forgot password' on the sign-in page; the link is valid for 1 hour.",
  ],
  [
    "How do I enable two-factor authentication?",
    "Settings > Security > Two-factor; authenticator apps and security keys are supported.",
  ],
  [
    "Can I recover a deleted file?",
    "Yes, from the trash for 30 days; admins can restore for other users.",
  ],
  [
    "How do I share a folder with someone outside my company?",
    "Use Share > Invite by email; external collaborator limits depend on the plan.",
  ],
  [
    "Why is my sync client stuck on 'indexing'?",
    "Large folders take time; check that the client is up to date and that no file name is unsupported (NW-422).",
  ],
  [
    "How do I change the owner of the account?",
    "The current owner transfers ownership in Admin > Account; the new owner must accept within 7 days.",
  ],
  [
    "Can I pay by invoice?",
    "Yes on annual Business and Enterprise plans; invoices are due in 30 days.",
  ],
  [
    "Which file types can be previewed?",
    "Documents, images, PDFs, audio and video up to 2 GB; other types download.",
  ],
  [
    "How do I move data between regions?",
    "Open a region migration request in Admin > Data residency; it runs in the background and is free once per year.",
  ],
  [
    "Is there a desktop client for Linux?",
    "Yes, for Ubuntu, Debian and Fedora, as .deb, .rpm and AppImage.",
  ],
  [
    "How do API tokens expire?",
    "After 90 days by default; the creator can choose 1 to 365 days or no expiry on Business and Enterprise.",
  ],
  [
    "Can I restrict sharing to my domain?",
    "Yes, admins set sharing policies in Admin > Sharing on Team and above.",
  ],
];

const FAQ_OPENERS = [
  "How do I reset my password?",
  "What is the refund policy for annual plans?",
  "What does error NW-403 mean?",
  "How much storage does the Team plan include?",
  "Which regions offer EU data residency?",
  "How do I enable two-factor authentication?",
];
const SIMPLE = [
  "What about the Business plan?",
  "How long are deleted files kept in the trash?",
  "What is the API rate limit on the Starter plan?",
  "Does the Team plan include SSO?",
  "What does NW-429 mean?",
  "How many webhook endpoints can a Team account have?",
  "Is there a Linux desktop client?",
  "What is the largest file I can upload through the web app?",
  "How do I restore a previous version of a file?",
  "Can I pay by invoice on the Team plan?",
  "Which regions are in Asia-Pacific?",
  "What does NW-460 mean?",
  "How long is the audit log kept on Business?",
  "Can external collaborators edit files?",
  "What is the uptime target for Business?",
  "How do I change the account owner?",
  "Are customer-managed keys available on Business?",
  "What happens to my files after I cancel?",
  "How do I turn off external sharing?",
  "Thanks. And how much does extra egress cost?",
];
const COMPLEX = [
  "Compare the Team and Business plans for a company of 40 people storing 30 TB with EU data residency, and explain the trade-offs step by step.",
  "Our nightly backup job fails with NW-429 and sometimes NW-504. Analyze the likely root cause and design a retry and batching strategy that stays within the Team plan limits.",
  "We are migrating 200 TB from another provider. Think carefully and derive a first-year cost estimate for Business versus Enterprise, including egress, migration help and version history growth.",
  "Explain why our sync clients in Frankfurt show NW-480 when staff travel to the US, and evaluate the options to fix it without breaking GDPR commitments.",
  "Design a folder and permission structure for a 300-person agency with clients who must never see each other's files, and explain why each rule is needed.",
  "Compare SSO with SAML versus OIDC on the Business plan for an organisation that uses both Azure AD and Okta, step by step, including SCIM provisioning.",
  "Our uptime last month was 99.2 % on Business. Reason about which credit we are owed, how to request it, and how to document the incident for our auditors.",
  "Debug this: uploads of 150 GB video files through the API stall at 90 % and then return NW-409. What is happening and how should our uploader be refactored?",
  "Evaluate whether we should enable customer-managed keys, considering the failure mode NW-540, our on-call capacity, and the compliance requirements of a bank customer.",
  "Optimize our storage costs: 60 users on Team, 12 TB stored, version history growing 15 % per month. Analyze the options and recommend a plan with numbers.",
  "Explain why legal holds block our retention clean-up job (NW-470) and design a process for legal and IT to release holds safely.",
  "Compare the egress allowances of each plan for a media company that serves 80 TB per month to partners, and derive the cheapest compliant setup.",
];

function systemPrompt(): string {
  const parts: string[] = [];
  parts.push(
    "You are Northwind's customer support assistant for Northwind Cloud Storage, a file storage and sharing service for businesses. " +
      "Answer questions from customers and administrators using only the knowledge base below. Be accurate and concise: give the direct answer first, then the steps or the reasoning when they help. " +
      "When a question needs account-specific data you do not have (invoices, usage, logs), explain how the customer can find it or offer to open a ticket. " +
      "Never invent prices, limits or policies that are not in the knowledge base; say that you will check with the team instead. " +
      "Quote error codes exactly (NW-xxx). Use the customer's plan when they mention it. Keep a friendly, professional tone and do not use marketing language. " +
      "If a request is about security, privacy or legal matters, answer from the policies and point to the Trust Center for documents. " +
      "Escalate to a human (say: 'I am handing this to our support team') when the customer reports data loss, a security incident, a billing dispute above $1,000, or asks twice for a human.",
  );
  parts.push("\n\n# Plans\n");
  for (const p of PLANS) {
    parts.push(
      `\n## ${p.name}\n- Price: ${p.price}.\n- Storage: ${p.storage}.\n- Users: ${p.users}.\n- Version history: ${p.versions}.\n- Support: ${p.support}.\n- API rate limit: ${p.api}.\n`,
    );
  }
  parts.push(
    "\n# Regions\nEvery account stores its data in one home region, chosen at sign-up; it can be changed once a year for free.\n",
  );
  for (const [code, place, notes] of REGIONS) parts.push(`- ${code} (${place}): ${notes}.\n`);
  parts.push("\n# Limits\n");
  for (const [what, value] of LIMITS) parts.push(`- ${what}: ${value}.\n`);
  parts.push(
    "\n# Error codes\nEvery API error carries a code, an HTTP status and a request id. Ask for the request id when a customer reports an error.\n",
  );
  for (const [code, meaning, fix] of ERRORS)
    parts.push(`- ${code}: ${meaning}. What to do: ${fix}.\n`);
  parts.push("\n# Policies\n");
  for (const p of POLICIES) parts.push(`- ${p}\n`);
  parts.push("\n# Frequently asked questions\n");
  for (const [q, a] of FAQ) parts.push(`Q: ${q}\nA: ${a}\n`);
  parts.push(
    "\n# Troubleshooting playbooks\n" +
      "Sync problems: confirm the client version (Help > About), check free disk space, look for unsupported names (NW-422), pause and resume sync, then collect logs with Help > Send diagnostics. " +
      "Upload failures: note the error code and request id; for NW-413 switch to multipart; for NW-429 honour Retry-After and reduce parallelism; for NW-504 use smaller parts; for NW-409 and NW-412 refetch the ETag. " +
      "Sign-in problems: check the account status in Admin > Users, SSO configuration (Business and above), device approval (NW-530), and whether the user's session count exceeds 10. " +
      "Billing questions: invoices are in Admin > Billing; plan changes are prorated daily; taxes depend on the billing address; refunds follow the refund policy. " +
      "Performance: recommend the nearest region, the desktop client's LAN sync for offices, and multipart uploads with 8 to 16 parallel parts for large files. " +
      "Data residency: data never leaves the home region except for the customer's own downloads; support staff access is logged in the audit log and limited to the region's support team on Enterprise.\n",
  );
  parts.push(
    "\n# Style\n" +
      "Use short paragraphs and numbered steps for procedures. Use tables only for comparisons of more than two options. State assumptions when you estimate costs, and show the arithmetic. " +
      "When the customer's question is ambiguous, answer the most likely reading and say what you assumed. End with one offer of further help, not a list of questions.\n",
  );
  return parts.join("");
}

/** FNV-1a: the same question always gets an answer of the same length, as it would the same answer. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}
const replyChars = (kind: "simple" | "complex", text: string) =>
  kind === "simple" ? 300 + (hash(text) % 7) * 100 : 1600 + (hash(text) % 13) * 200;

export function generate(seed = 20251124): Workload {
  const rnd = mulberry32(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const sessions: Workload["sessions"] = [];
  for (let s = 0; s < 40; s++) {
    const turns: WorkloadTurn[] = [];
    const add = (text: string, kind: "simple" | "complex", role: string) =>
      turns.push({
        text,
        kind,
        role,
        maxTokens: kind === "simple" ? 1024 : 4096,
        replyChars: replyChars(kind, text),
      });
    // 70 % of sessions open with one of the frequently asked questions, word for word.
    if (rnd() < 0.7) add(pick(FAQ_OPENERS), "simple", "faq-opener");
    else if (rnd() < 0.5) add(pick(COMPLEX), "complex", "opener");
    else add(pick(SIMPLE), "simple", "opener");
    const followUps = 2 + Math.floor(rnd() * 6); // 2..7
    for (let t = 0; t < followUps; t++) {
      const r = rnd();
      if (r < 0.1 && turns.length > 1) {
        const earlier = turns[Math.floor(rnd() * turns.length)]!;
        add(earlier.text, earlier.kind, "repeat");
      } else if (r < 0.55) add(pick(SIMPLE), "simple", "follow-up");
      else add(pick(COMPLEX), "complex", "follow-up");
    }
    sessions.push({ id: `s${String(s + 1).padStart(2, "0")}`, turns });
  }
  return {
    name: "support-assistant-v1",
    description:
      "Customer-support assistant for a cloud storage product: a ~3k-token knowledge-base system prompt, 40 multi-turn sessions " +
      "(client-side history, as with the Messages API), most opening with one of six frequently asked questions word for word, " +
      "some questions repeated later in a session, and a mix of simple lookups (short answers) and complex requests " +
      "(comparisons, planning, debugging; long answers).",
    naiveModel: "claude-sonnet-4-6",
    system: systemPrompt(),
    sessions,
  };
}

if (require.main === module) {
  const out = path.join(__dirname, "reference.json");
  const w = generate();
  writeFileSync(out, JSON.stringify(w, null, 2) + "\n");
  const turns = w.sessions.flatMap((s) => s.turns);
  process.stdout.write(
    `wrote ${out}: system prompt ${w.system.length} chars (~${Math.ceil(w.system.length / 4)} tokens), ${w.sessions.length} sessions, ${turns.length} turns ` +
      `(${turns.filter((t) => t.kind === "complex").length} complex, ${turns.filter((t) => t.role === "faq-opener").length} FAQ openers, ${turns.filter((t) => t.role === "repeat").length} repeats)\n`,
  );
}
