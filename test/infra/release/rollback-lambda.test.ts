/**
 * `agent:release` on a promoted Lambda stack (issue 15): the bundle comes from the stack's own
 * bucket by its content-addressed key; the release may be given in hex, as S3 keys show it.
 */
import { bundleKey } from "../../../components/aws/lambda-bundle";
import { invocationsOf } from "../../support/pulumi";
import { stackRenderer, type RenderedStack } from "../../support/render-stack";
import { rollbackAssertions } from "./rollback-assertions";

const HEX = "7f".repeat(32);
const RELEASE = Buffer.from(HEX, "hex").toString("base64");
const render = stackRenderer(
  "lambda-prod",
  { "agent:release": HEX },
  { storedReleases: [Buffer.from("01".repeat(32), "hex").toString("base64"), RELEASE] },
);
let s: RenderedStack;
beforeAll(async () => {
  s = await render();
}, 120_000);

rollbackAssertions(() => s, RELEASE);

test("the function's code is the release's object in the stack's own bucket", () => {
  const bucket = s.q.findOne("aws:s3/bucketV2:BucketV2").state.bucket;
  const fn = s.q.findOne("aws:lambda/function:Function").inputs;
  expect(fn).toMatchObject({
    s3Bucket: bucket,
    s3Key: bundleKey(RELEASE),
    sourceCodeHash: RELEASE,
  });
  const listed = invocationsOf("aws:s3/getObjects:getObjects");
  expect(listed.map((c) => c.inputs)).toEqual([{ bucket, prefix: "lambda/" }]);
});
