/**
 * A scriptable OpenAI-compatible backend on loopback for engine tests: deterministic bodies, and
 * per-request behaviours chosen by a script (slow answers, 429 with retry-after, 500, resets,
 * hangs). Records every call so tests can count duplicates.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export type Behaviour =
  | { kind: "ok"; delayMs?: number }
  | { kind: "status"; status: number; retryAfterMs?: number; retryAfterS?: number; body?: unknown }
  | { kind: "reset" }
  | { kind: "hang" };

export interface FakeCall {
  customKey: string;
  body: Record<string, unknown>;
  attempt: number;
}

export interface FakeBackend {
  url: string;
  calls: FakeCall[];
  /** How many calls each key received. */
  counts: Map<string, number>;
  inFlight: () => number;
  maxInFlight: () => number;
  close(): Promise<void>;
}

/** The reply a correct run must hold for a request: derived only from the request. */
export function expectedContent(body: Record<string, unknown>): string {
  const messages = body.messages as { content: string }[] | undefined;
  const prompt = messages?.map((m) => m.content).join("|") ?? String(body.prompt ?? body.input ?? "");
  return `echo:${prompt}`;
}

export async function startFakeBackend(
  script: (call: FakeCall) => Behaviour = () => ({ kind: "ok" }),
  options: { slots?: number } = {},
): Promise<FakeBackend> {
  const calls: FakeCall[] = [];
  const counts = new Map<string, number>();
  let inFlight = 0;
  let maxInFlight = 0;
  const sockets = new Set<import("node:net").Socket>();
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as Record<string, unknown>;
    const key = expectedContent(body);
    const attempt = (counts.get(key) ?? 0) + 1;
    counts.set(key, attempt);
    const call = { customKey: key, body, attempt };
    calls.push(call);
    const b = script(call);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    let settled = false;
    const done = () => {
      if (settled) return;
      settled = true;
      inFlight--;
    };
    // An aborted call closes the connection: the engine would stop working on it too.
    res.on("close", done);
    if (b.kind === "hang") return;
    if (b.kind === "reset") {
      done();
      req.socket.destroy();
      return;
    }
    if (b.kind === "status") {
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (b.retryAfterMs !== undefined) headers["retry-after-ms"] = String(b.retryAfterMs);
      if (b.retryAfterS !== undefined) headers["retry-after"] = String(b.retryAfterS);
      res.writeHead(b.status, headers);
      res.end(JSON.stringify(b.body ?? { error: { message: `scripted ${b.status}`, type: "server_error" } }));
      done();
      return;
    }
    const delay = b.delayMs ?? 0;
    const reply = () => {
      const content = expectedContent(body);
      const out = {
        id: `chatcmpl-${attempt}`,
        object: "chat.completion",
        model: body.model,
        choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
        usage: { prompt_tokens: content.length, completion_tokens: 3, total_tokens: content.length + 3 },
      };
      res.writeHead(200, { "content-type": "application/json", "x-request-id": `up-${calls.length}` });
      res.end(JSON.stringify(out));
      done();
    };
    if (delay > 0) {
      const timer = setTimeout(reply, delay);
      res.on("close", () => clearTimeout(timer));
    } else reply();
  };
  const server: Server = createServer((req, res) => {
    void handle(req, res).catch(() => res.destroy());
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  void options;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    calls,
    counts,
    inFlight: () => inFlight,
    maxInFlight: () => maxInFlight,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
