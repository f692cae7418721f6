/**
 * The simulator's HTTP front: plain node:http with keep-alive and no framework, so that in
 * zero-cost mode the server adds as little as possible to what a benchmark measures.
 */

import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { envelope, invalidRequest, SluiceError, tooLarge } from "../errors.js";
import type { InferenceKind } from "./requests.js";
import { RateLimitedError, type Reply, type Simulator } from "./simulator.js";

const MAX_BODY_BYTES = 32 * 1024 * 1024;

const INFERENCE_ROUTES: Record<string, InferenceKind> = {
  "/v1/chat/completions": "chat",
  "/v1/completions": "completions",
  "/v1/embeddings": "embeddings",
};

export interface ListeningServer {
  url: string;
  close(): Promise<void>;
}

export async function listen(sim: Simulator, host: string, port: number): Promise<ListeningServer> {
  const tag = randomBytes(3).toString("hex");
  let counter = 0;
  const server = createServer({ noDelay: true, requestTimeout: 0 }, (req, res) => {
    const header = req.headers["x-request-id"];
    const requestId =
      typeof header === "string" && header.length > 0 ? header : `sim-${tag}-${(counter++).toString(36)}`;
    route(sim, req, res, requestId);
  });
  // Hung requests must stay open until the client gives up; idle keep-alive sockets linger like a real server's.
  server.keepAliveTimeout = 75_000;
  server.headersTimeout = 80_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.address.includes(":") ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${shownHost}:${address.port}`,
    close: () => {
      closing ??= closeServer(server);
      return closing;
    },
  };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Hung and in-flight requests would otherwise keep close() waiting forever.
    server.closeAllConnections();
  });
}

function route(sim: Simulator, req: IncomingMessage, res: ServerResponse, requestId: string): void {
  const path = (req.url ?? "/").split("?", 1)[0] as string;
  const send = (status: number, body: unknown, headers: Record<string, string> = {}) =>
    sendJson(res, requestId, status, body, headers);
  const kind = INFERENCE_ROUTES[path];
  if (req.method === "POST" && kind !== undefined) {
    readJson(req)
      .then((body) => sim.handle(kind, body, replyFor(req, res, send)))
      .catch((err: unknown) => sendError(send, err));
    return;
  }
  req.resume();
  switch (`${req.method} ${path}`) {
    case "GET /health":
      send(200, { status: "ok" });
      break;
    case "GET /v1/models":
      send(200, sim.models());
      break;
    case "GET /stats":
      send(200, sim.stats());
      break;
    case "POST /stats/reset":
      sim.reset();
      send(200, sim.stats());
      break;
    default:
      sendError(
        send,
        new SluiceError("unknown_url", `Unknown request URL: ${req.method} ${path}`, {
          status: 404,
          type: "invalid_request_error",
        }),
      );
  }
}

function replyFor(req: IncomingMessage, res: ServerResponse, send: Reply["json"]): Reply {
  return {
    json: send,
    reset: () => req.socket.resetAndDestroy(),
    onAbort: (listener) => {
      res.once("close", () => {
        if (!res.writableEnded) listener();
      });
    },
  };
}

function sendJson(
  res: ServerResponse,
  requestId: string,
  status: number,
  body: unknown,
  headers: Record<string, string>,
): void {
  if (res.writableEnded || res.destroyed) return;
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(payload),
    "x-request-id": requestId,
    ...headers,
  });
  res.end(payload);
}

function sendError(send: Reply["json"], err: unknown): void {
  const e =
    err instanceof SluiceError
      ? err
      : new SluiceError("server_error", "Internal server error", { status: 500, cause: err });
  const headers: Record<string, string> =
    e instanceof RateLimitedError
      ? { "retry-after-ms": String(e.retryAfterMs), "retry-after": String(Math.ceil(e.retryAfterMs / 1000)) }
      : {};
  send(e.status, envelope(e), headers);
}

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > MAX_BODY_BYTES) {
      req.resume();
      reject(tooLarge(`Request body exceeds ${MAX_BODY_BYTES} bytes.`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on("error", reject);
    req.on("end", () => {
      if (size > MAX_BODY_BYTES) return reject(tooLarge(`Request body exceeds ${MAX_BODY_BYTES} bytes.`));
      try {
        resolve(JSON.parse(Buffer.concat(chunks, size).toString("utf8")));
      } catch {
        reject(invalidRequest("We could not parse the JSON body of your request."));
      }
    });
  });
}
