/** A batch whose input is named by an s3:// URL (allowed prefixes only), output in the blob store. */
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createS3Client } from "../../src/blob/s3-blob-store.js";
import { type FakeBackend, startFakeBackend } from "../helpers/fake-backend.js";
import { type S3TestServer, startS3Server } from "../helpers/s3.js";
import { chatLine, startSluice, type TestServer, waitForStatus } from "../helpers/server.js";

let s3: S3TestServer;
let fake: FakeBackend;
let s: TestServer;
const saved: Record<string, string | undefined> = {};

beforeAll(async () => {
  s3 = await startS3Server("inputs");
  for (const [k, v] of Object.entries(s3.env)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  fake = await startFakeBackend();
  s = await startSluice({ execution: { backend: fake.url }, limits: { inputUrlPrefixes: ["s3://inputs/allowed"] } });
});
afterAll(async () => {
  await s.close();
  await fake.close();
  await s3.stop();
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

it("reads a batch input straight from an allowed s3:// URL", async () => {
  const client = createS3Client(s3.connection);
  const body = `${[chatLine("a", "from s3"), chatLine("b", "also")].join("\n")}\n`;
  await client.send(new PutObjectCommand({ Bucket: "inputs", Key: "allowed/job.jsonl", Body: body }));
  client.destroy();
  const b = await s.client.batches.create({
    input_file_id: "s3://inputs/allowed/job.jsonl",
    endpoint: "/v1/chat/completions",
    completion_window: "24h",
  });
  const done = await waitForStatus(s.client, b.id, ["completed", "failed"]);
  expect(done.status).toBe("completed");
  expect(done.request_counts).toEqual({ total: 2, completed: 2, failed: 0 });
  const out = await (await s.client.files.content(done.output_file_id as string)).text();
  expect(
    out
      .trim()
      .split("\n")
      .map((l) => (JSON.parse(l) as { custom_id: string }).custom_id),
  ).toEqual(["a", "b"]);
});

it("refuses s3:// inputs outside the allowed prefixes", async () => {
  await expect(
    s.client.batches.create({
      input_file_id: "s3://inputs/secret/x.jsonl",
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    }),
  ).rejects.toMatchObject({ status: 400, error: { param: "input_file_id" } });
  await expect(
    s.client.batches.create({
      input_file_id: "s3://inputs/allowed-not/x.jsonl",
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    }),
  ).rejects.toMatchObject({ status: 400 });
});
