/**
 * Regression: `s3://` input URLs were checked against SLUICE_S3_INPUT_PREFIXES as strings, so
 * `s3://allowed/prefix/../../other/key` passed and reached S3 unchanged. URLs are now parsed into
 * segments: dot segments (also percent-encoded), empty segments and backslashes are refused, and
 * prefixes match on segment boundaries; `{tenant}` scopes a prefix to the requesting tenant.
 * The API test puts a request-counting proxy in front of s3rver to show refused URLs never reach it.
 */

import { once } from "node:events";
import { createServer, request, type Server } from "node:http";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputUrlError, inputUrlAllowed, parseInputPrefixes, parseS3Location } from "../../src/blob/input-url.js";
import { createS3Client, openS3Url } from "../../src/blob/s3-blob-store.js";
import { resolveLimits } from "../../src/config.js";
import { type FakeBackend, startFakeBackend } from "../helpers/fake-backend.js";
import { type S3TestServer, startS3Server } from "../helpers/s3.js";
import { chatLine, startSluice, type TestServer, waitForStatus } from "../helpers/server.js";
import { tenantKey } from "../helpers/tenants.js";

describe("s3:// input URLs (unit)", () => {
  const prefixes = ["s3://inputs/allowed/prefix", "s3://inputs/batches/", "s3://shared/t/{tenant}"];
  const allowed = (url: string, tenant = "acme") => inputUrlAllowed(url, prefixes, tenant);

  it("admits objects strictly under a prefix, on segment boundaries", () => {
    expect(allowed("s3://inputs/allowed/prefix/job.jsonl")).toBe(true);
    expect(allowed("s3://inputs/allowed/prefix/a/b c.jsonl")).toBe(true);
    expect(allowed("s3://inputs/batches/x")).toBe(true);
    expect(allowed("s3://inputs/batches-other/x")).toBe(false);
    expect(allowed("s3://inputs/allowed/prefixed/x")).toBe(false);
    expect(allowed("s3://inputs/batches")).toBe(false); // the prefix itself names no object under it
    expect(allowed("s3://other/allowed/prefix/x")).toBe(false);
    expect(allowed("s3://inputs/secret/x")).toBe(false);
  });

  it("refuses traversal and ambiguous keys instead of normalising them", () => {
    for (const url of [
      "s3://inputs/allowed/prefix/../../other/key",
      "s3://inputs/allowed/prefix/./x",
      "s3://inputs/allowed/prefix/%2e%2e/%2E%2E/other/key",
      "s3://inputs/allowed/prefix/.%2E/x",
      "s3://inputs/allowed/prefix/a%2f..%2fx",
      "s3://inputs/allowed/prefix/..\\..\\other",
      "s3://inputs/allowed/prefix//x",
      "s3://inputs/allowed/prefix/x/",
      "s3://inputs/allowed/prefix/x\u0000y",
      "s3://inputs/allowed/prefix/%00",
      "s3://inputs/",
      "s3://inputs",
      "s3://IN/x",
      "s3:///x",
      "https://inputs/allowed/prefix/x",
      `s3://inputs/allowed/prefix/${"k".repeat(1100)}`,
    ]) {
      expect(() => allowed(url), url).toThrow(InputUrlError);
    }
    // Dots inside a segment are ordinary key characters.
    expect(allowed("s3://inputs/allowed/prefix/..job.jsonl")).toBe(true);
    expect(parseS3Location("s3://in.puts/a/b.c")).toEqual({ bucket: "in.puts", segments: ["a", "b.c"] });
  });

  it("scopes a {tenant} prefix to the requesting tenant", () => {
    expect(allowed("s3://shared/t/acme/job.jsonl", "acme")).toBe(true);
    expect(allowed("s3://shared/t/acme/job.jsonl", "globex")).toBe(false);
    expect(allowed("s3://shared/t/{tenant}/job.jsonl", "globex")).toBe(false);
  });

  it("refuses bad prefixes at startup without echoing them", () => {
    expect(parseInputPrefixes(" s3://a-b/x/ , s3://cde ")).toEqual(["s3://a-b/x/", "s3://cde"]);
    expect(parseInputPrefixes(undefined)).toEqual([]);
    for (const bad of ["s3://b/../x", "http://bucket/x", "s3://bucket//x", "bucket/x"]) {
      const message = (() => {
        try {
          resolveLimits({ SLUICE_S3_INPUT_PREFIXES: `s3://ok-bucket/in,${bad}` });
          return "no error";
        } catch (err) {
          return (err as Error).message;
        }
      })();
      expect(message).toContain("SLUICE_S3_INPUT_PREFIXES");
      expect(message).toMatch(/entry 2 /);
      expect(message).not.toContain(bad);
    }
  });

  it("openS3Url refuses a traversing key before any request", async () => {
    await expect(
      openS3Url("s3://inputs/a/../b", { region: "us-east-1", endpoint: "http://127.0.0.1:9" }),
    ).rejects.toMatchObject({ code: "invalid_s3_url" });
  });
});

describe("s3:// input URLs through the API", () => {
  let s3: S3TestServer;
  let proxy: Server;
  const seen: string[] = [];
  let fake: FakeBackend;
  let s: TestServer;
  const saved: Record<string, string | undefined> = {};

  beforeAll(async () => {
    s3 = await startS3Server("inputs");
    const upstream = new URL(s3.connection.endpoint as string);
    // Counts every request that reaches "S3", then forwards it unchanged (host header included,
    // so s3rver's signature check still passes).
    proxy = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      const up = request(
        { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      up.on("error", () => res.destroy());
      req.pipe(up);
    }).listen(0, "127.0.0.1");
    await once(proxy, "listening");
    const env = { ...s3.env, SLUICE_S3_ENDPOINT: `http://127.0.0.1:${(proxy.address() as { port: number }).port}` };
    for (const [k, v] of Object.entries(env)) {
      saved[k] = process.env[k];
      process.env[k] = v;
    }
    const client = createS3Client(s3.connection);
    for (const key of [
      "other/key.jsonl",
      "allowed/prefix/ok.jsonl",
      "tenants/acme/a.jsonl",
      "tenants/globex/g.jsonl",
    ]) {
      const body = `${chatLine("a", `from ${key}`)}\n`;
      await client.send(new PutObjectCommand({ Bucket: "inputs", Key: key, Body: body }));
    }
    client.destroy();
    fake = await startFakeBackend();
    s = await startSluice({
      execution: { backend: fake.url },
      limits: { inputUrlPrefixes: ["s3://inputs/allowed/prefix", "s3://inputs/tenants/{tenant}"] },
    });
  });
  afterAll(async () => {
    await s?.close();
    await fake?.close();
    proxy?.close();
    await s3?.stop();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  const create = (client: TestServer["client"], url: string) =>
    client.batches.create({ input_file_id: url, endpoint: "/v1/chat/completions", completion_window: "24h" });

  it("refuses traversal with a 400 and never reaches S3", async () => {
    for (const url of [
      "s3://inputs/allowed/prefix/../../other/key.jsonl",
      "s3://inputs/allowed/prefix/%2e%2e/%2e%2e/other/key.jsonl",
      "s3://inputs/allowed/prefix/..%5c..%5cother/key.jsonl",
      "s3://inputs/allowed/prefix-other/key.jsonl",
      "s3://inputs/tenants/acme/a.jsonl", // default tenant: not its folder
    ]) {
      await expect(create(s.client, url), url).rejects.toMatchObject({
        status: 400,
        error: { code: "invalid_input_file", param: "input_file_id" },
      });
    }
    expect((await s.client.batches.list()).data).toEqual([]);
    expect(seen).toEqual([]);
  });

  it("still reads allowed objects, and a tenant only its own folder (control: the proxy sees those)", async () => {
    const ok = await create(s.client, "s3://inputs/allowed/prefix/ok.jsonl");
    expect((await waitForStatus(s.client, ok.id, ["completed", "failed"])).status).toBe("completed");
    const acme = await tenantKey(s, "acme");
    await expect(create(acme.client, "s3://inputs/tenants/globex/g.jsonl")).rejects.toMatchObject({ status: 400 });
    const own = await create(acme.client, "s3://inputs/tenants/acme/a.jsonl");
    expect((await waitForStatus(acme.client, own.id, ["completed", "failed"])).status).toBe("completed");
    expect(seen.map((r) => r.split("?")[0])).toEqual([
      "GET /inputs/allowed/prefix/ok.jsonl",
      "GET /inputs/tenants/acme/a.jsonl",
    ]);
  });
});
