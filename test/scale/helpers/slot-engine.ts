/**
 * A capacity-limited OpenAI-compatible engine on loopback for multi-process tests: `slots`
 * requests are served at once, each for `serviceMs`, the rest wait in a FIFO queue (like a
 * continuous-batching engine, so a client that floods it gains nothing). Replies echo the prompt.
 *
 * Each worker process gets its own base URL `http://127.0.0.1:<port>/<tag>/v1`, so every call is
 * attributed to the worker that made it; per-prompt counts reveal duplicate calls.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface EngineCall {
  /** Path segment before /v1: which worker made the call. */
  tag: string;
  /** The prompt (all message contents joined with "|"). */
  prompt: string;
}

export interface SlotEngine {
  /** Base URL for the worker tagged `tag` (an OpenAI-compatible `/v1` root). */
  urlFor(tag: string): string;
  readonly calls: EngineCall[];
  /** Calls per prompt. */
  readonly counts: Map<string, number>;
  callsBy(tag: string): number;
  close(): Promise<void>;
}

export interface SlotEngineOptions {
  slots: number;
  serviceMs: number;
}

/** The reply content a correct run must hold for a prompt. */
export const echoOf = (prompt: string) => `echo:${prompt}`;

interface Waiting {
  res: ServerResponse;
  prompt: string;
  model: unknown;
  state: "queued" | "serving" | "done";
  timer?: NodeJS.Timeout;
}

export async function startSlotEngine(o: SlotEngineOptions): Promise<SlotEngine> {
  const calls: EngineCall[] = [];
  const counts = new Map<string, number>();
  const byTag = new Map<string, number>();
  const queue: Waiting[] = [];
  const sockets = new Set<Socket>();
  let busy = 0;
  let served = 0;

  const admit = () => {
    while (busy < o.slots && queue.length > 0) {
      const w = queue.shift() as Waiting;
      if (w.state !== "queued") continue;
      w.state = "serving";
      busy++;
      w.timer = setTimeout(() => finish(w), o.serviceMs);
    }
  };

  const finish = (w: Waiting) => {
    w.state = "done";
    busy--;
    served++;
    const content = echoOf(w.prompt);
    w.res.writeHead(200, { "content-type": "application/json", "x-request-id": `eng-${served}` });
    w.res.end(
      JSON.stringify({
        id: `chatcmpl-${served}`,
        object: "chat.completion",
        model: w.model,
        choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
        usage: { prompt_tokens: w.prompt.length, completion_tokens: 3, total_tokens: w.prompt.length + 3 },
      }),
    );
    admit();
  };

  // The client went away (aborted call, killed worker): drop its queue place or free its slot.
  const abandon = (w: Waiting) => {
    if (w.state === "serving") {
      clearTimeout(w.timer);
      busy--;
    }
    w.state = "done";
    admit();
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as {
      model?: unknown;
      messages?: { content: string }[];
    };
    const tag = /^\/([^/]+)\/v1\//.exec(req.url ?? "")?.[1] ?? "";
    const prompt = body.messages?.map((m) => m.content).join("|") ?? "";
    calls.push({ tag, prompt });
    counts.set(prompt, (counts.get(prompt) ?? 0) + 1);
    byTag.set(tag, (byTag.get(tag) ?? 0) + 1);
    const w: Waiting = { res, prompt, model: body.model, state: "queued" };
    res.on("close", () => {
      if (w.state !== "done") abandon(w);
    });
    queue.push(w);
    admit();
  };

  const server = createServer((req, res) => {
    void handle(req, res).catch(() => res.destroy());
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    urlFor: (tag) => `http://127.0.0.1:${port}/${tag}/v1`,
    calls,
    counts,
    callsBy: (tag) => byTag.get(tag) ?? 0,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
