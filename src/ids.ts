/** Unguessable object ids in OpenAI's shapes: `file-…`, `batch_…`, `batch_req_…`, `req_…`. */
import { randomBytes } from "node:crypto";

const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/** 24 base62 characters ≈ 142 bits of entropy. */
export function randomToken(length = 24): string {
  const bytes = randomBytes(length * 2);
  let out = "";
  for (let i = 0; i < bytes.length && out.length < length; i++) {
    const b = bytes[i] as number;
    // Reject the top of the byte range so every character is equally likely.
    if (b < 248) out += ALPHABET[b % 62];
  }
  return out.length === length ? out : out + randomToken(length - out.length);
}

export const newFileId = () => `file-${randomToken()}`;
export const newBatchId = () => `batch_${randomToken()}`;
export const newRequestId = () => `req_${randomToken()}`;
export const newClaimRangeId = () => `cr_${randomToken()}`;
export const newWorkerId = () => `w_${randomToken(12)}`;
export const newAttemptId = () => `att${randomToken(12)}`;
