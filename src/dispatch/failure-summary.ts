/**
 * Failed calls, summarised: one warn line per backend every SUMMARY_EVERY_MS that had failures
 * (`backend http://…: 812 calls failed in 10 s (ECONNREFUSED 800, HTTP 500 12); 800 did not
 * count against their lines' attempts`), instead of a line per call — a 429 storm or an engine
 * that is away would otherwise write thousands of lines a second.
 */
import type { BackendResult } from "../backends/backend.js";
import type { Logger } from "../logger.js";

export const SUMMARY_EVERY_MS = 10_000;

interface BackendFailures {
  total: number;
  unspent: number;
  byCause: Map<string, number>;
}

/** `HTTP 429`, `ECONNREFUSED`, `timeout`, `invalid_response`… */
function causeOf(result: BackendResult): string {
  if (result.kind === "response") return `HTTP ${result.status}`;
  if (result.code === "connection_error") return result.message.split(":")[0] || result.code;
  return result.code;
}

export class FailureSummary {
  readonly #logger: Logger;
  readonly #everyMs: number;
  #byBackend = new Map<string, BackendFailures>();
  #timer: NodeJS.Timeout | undefined;
  #since = Date.now();

  constructor(logger: Logger, everyMs = SUMMARY_EVERY_MS) {
    this.#logger = logger;
    this.#everyMs = everyMs;
  }

  /** A call that did not succeed; `unspent`: it cost its line no attempt. */
  failed(backend: string, result: BackendResult, unspent = false): void {
    let f = this.#byBackend.get(backend);
    if (f === undefined) {
      f = { total: 0, unspent: 0, byCause: new Map() };
      this.#byBackend.set(backend, f);
    }
    f.total++;
    if (unspent) f.unspent++;
    const cause = causeOf(result);
    f.byCause.set(cause, (f.byCause.get(cause) ?? 0) + 1);
    if (this.#timer === undefined) {
      this.#since = Date.now();
      this.#timer = setTimeout(() => this.flush(), this.#everyMs);
      this.#timer.unref();
    }
  }

  /** Writes what was counted since the last line (and starts a new interval). */
  flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const seconds = Math.max(1, Math.round((Date.now() - this.#since) / 1000));
    for (const [backend, f] of this.#byBackend) {
      const causes = [...f.byCause].sort((a, b) => b[1] - a[1]);
      this.#logger.warn(
        `backend ${backend}: ${f.total} calls failed in ${seconds} s (${causes.map(([c, n]) => `${c} ${n}`).join(", ")})` +
          (f.unspent > 0 ? `; ${f.unspent} did not count against their lines' attempts` : ""),
        { backend, failed: f.total, unspentAttempts: f.unspent, causes: Object.fromEntries(causes), seconds },
      );
    }
    this.#byBackend = new Map();
  }

  close(): void {
    this.flush();
  }
}
