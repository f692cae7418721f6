/**
 * Output and error file lines in OpenAI's exact shape:
 *   {"id":"batch_req_…","custom_id":"…","response":{"status_code":200,"request_id":"…","body":{…}},"error":null}
 * Successes go to the output file; everything else to the error file: upstream HTTP errors keep
 * `response` with the upstream status and body; failures without an HTTP answer, and expired or
 * cancelled lines, have `response: null` and `error: {code, message}`. Lines are built by string
 * concatenation around the stored JSON text, so bodies are never re-parsed.
 * Extension: a line answered from another batch's result, without a call (README "Never pay
 * twice"), ends with `"reused_from":"batch_…"`, the batch it was taken from; other lines do not
 * have the field.
 * Extension: a line merged with an identical line of its batch (sent once for both) ends with
 * `"merged_with":"<custom_id>"`, the custom_id of the line whose answer it took.
 */
import { createHash } from "node:crypto";
import type { FinishedRow } from "../store/requests/read.js";

let lastBatch = "";
let lastPrefix = "";

/**
 * Deterministic per (batch, line): reading partial output twice yields the same ids. 24 hex
 * digits from a hash of the batch id, then the line in 8: unique within a batch, and one hash per
 * batch instead of one per line (a hash per line cost as much as formatting the line).
 */
export function batchRequestId(batchId: string, line: number): string {
  if (batchId !== lastBatch) {
    lastPrefix = createHash("sha256").update(batchId).digest("hex").slice(0, 24);
    lastBatch = batchId;
  }
  return `batch_req_${lastPrefix}${line.toString(16).padStart(8, "0")}`;
}

export interface FormattedLine {
  target: "output" | "error";
  text: string;
}

export function formatOutputLine(batchId: string, row: FinishedRow): FormattedLine {
  const head = `{"id":"${batchRequestId(batchId, row.line)}","custom_id":${JSON.stringify(row.custom_id)},`;
  if (row.response_status !== null && row.result !== null) {
    const response = `"response":{"status_code":${row.response_status},"request_id":${JSON.stringify(row.request_id ?? "")},"body":${row.result}}`;
    const target = row.status === "succeeded" ? "output" : "error";
    const reused = row.reused_from === null ? "" : `,"reused_from":${JSON.stringify(row.reused_from)}`;
    return { target, text: `${head}${response},"error":null${reused}${mergedWith(row)}}\n` };
  }
  const error = row.error ?? JSON.stringify({ code: "unknown_error", message: "The request failed." });
  return { target: "error", text: `${head}"response":null,"error":${error}${mergedWith(row)}}\n` };
}

const mergedWith = (row: FinishedRow) =>
  row.merged_with === null ? "" : `,"merged_with":${JSON.stringify(row.merged_with)}`;

export const EXPIRED_ERROR = {
  code: "batch_expired",
  message: "This request could not be executed before the completion window expired.",
};

export const CANCELLED_ERROR = {
  code: "batch_cancelled",
  message: "This request was not executed because the batch was cancelled.",
};
