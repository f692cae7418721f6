/** A real S3-compatible server for tests: s3rver in a child process on an ephemeral port. */
import { type ChildProcess, fork } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { S3Connection } from "../../src/blob/s3-blob-store.js";

export interface S3TestServer {
  readonly bucket: string;
  readonly connection: S3Connection;
  /** The variables the configuration reads for S3 (`resolveS3`), pointing at this server. */
  readonly env: Record<string, string>;
  stop(): Promise<void>;
}

// s3rver's fixed development credentials.
const ACCESS_KEY = "S3RVER";
const SECRET_KEY = "S3RVER";

export async function startS3Server(bucket = "sluice-test"): Promise<S3TestServer> {
  const dir = await mkdtemp(join(tmpdir(), "sluice-s3rver-"));
  const child = fork(new URL("./s3rver-child.mjs", import.meta.url), [dir, bucket], {
    execArgv: [],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  let port: number;
  try {
    port = await waitForPort(child);
  } catch (err) {
    child.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    bucket,
    connection: {
      region: "us-east-1",
      endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY },
    },
    env: {
      SLUICE_S3_ENDPOINT: endpoint,
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: ACCESS_KEY,
      AWS_SECRET_ACCESS_KEY: SECRET_KEY,
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, "exit");
        child.disconnect();
        const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function waitForPort(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    child.once("message", (msg: { port?: unknown }) => {
      if (typeof msg.port === "number") resolve(msg.port);
      else reject(new Error("s3rver child sent no port"));
    });
    child.once("exit", (code) => reject(new Error(`s3rver child exited with ${code}`)));
    child.once("error", reject);
  });
}
