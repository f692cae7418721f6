/**
 * Request bodies must make progress. Fastify's requestTimeout and connectionTimeout are 0 by
 * default, and a total time limit would cut a legitimate multi-GB upload, so instead a body must
 * deliver a minimum number of bytes in every window (Apache mod_reqtimeout's MinRate, in spirit):
 * a client sending 1 byte every 10 s is answered 408 and its connection closed after one window.
 *
 * Progress is read from the socket's byte counter, never by listening to the body (which would
 * start it flowing before its parser is attached). A window in which the server itself held the
 * body back (its buffer full: the blob store or a parser applying backpressure) is not held
 * against the client.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { AppContext } from "../context.js";
import { envelope, SluiceError } from "../errors.js";
import type { Logger } from "../logger.js";

interface BodyTimeoutOptions {
  /** Window length, ms; 0 turns the check off. */
  windowMs: number;
  /** Bytes per second the client must average over each window (at least one byte per window). */
  minBytesPerSecond: number;
  logger: Logger;
}

/** Samples per window: the server-side backpressure check needs to see stalls inside a window. */
const SAMPLES_PER_WINDOW = 10;

export function installBodyTimeout(app: FastifyInstance, ctx: Pick<AppContext, "limits" | "logger">): void {
  const options: BodyTimeoutOptions = {
    windowMs: ctx.limits.bodyTimeoutMs,
    minBytesPerSecond: ctx.limits.bodyMinBytesPerSecond,
    logger: ctx.logger,
  };
  if (options.windowMs <= 0) return;
  app.addHook("onRequest", async (request, reply) => {
    if (request.raw.complete) return; // no body, or one that already arrived whole
    watchBody(request, reply, options);
  });
}

function watchBody(request: FastifyRequest, reply: FastifyReply, options: BodyTimeoutOptions): void {
  const req = request.raw;
  const socket = req.socket;
  const need = Math.max(1, Math.floor((options.minBytesPerSecond * options.windowMs) / 1000));
  let windowStart = Date.now();
  let windowBytes = socket.bytesRead;
  let serverHeldBack = false;

  const stop = () => {
    clearInterval(timer);
    socket.off("close", stop); // keep-alive sockets carry many requests: no listener pile-up
  };
  const timer = setInterval(
    () => {
      if (req.complete || socket.destroyed) return stop();
      // Answered before its body arrived (a 4xx): nobody reads the rest, so discard it as it comes
      // (as Node does for a body never read); the rate check below still applies to it.
      if (reply.raw.writableFinished && req.readableFlowing !== true) req.unpipe().resume();
      // Node stops reading the socket once the body's buffer is full: that stall is ours.
      if (req.readableLength >= req.readableHighWaterMark) serverHeldBack = true;
      const now = Date.now();
      if (now - windowStart < options.windowMs) return;
      const got = socket.bytesRead - windowBytes;
      if (got < need && !serverHeldBack) {
        stop();
        cut(request, reply, options, got, need);
        return;
      }
      windowStart = now;
      windowBytes = socket.bytesRead;
      serverHeldBack = false;
    },
    Math.max(10, Math.floor(options.windowMs / SAMPLES_PER_WINDOW)),
  );
  timer.unref();
  socket.once("close", stop);
}

/**
 * Answers 408 (unless a response already started) and closes the connection once it is written:
 * whatever was reading the body then sees an aborted request and cleans up (a blob write removes
 * its temporary file).
 */
function cut(
  request: FastifyRequest,
  reply: FastifyReply,
  options: BodyTimeoutOptions,
  got: number,
  need: number,
): void {
  const seconds = options.windowMs / 1000;
  options.logger.warn("request body too slow; closing the connection", {
    requestId: request.id,
    url: request.url.split("?")[0],
    bytes: got,
    windowSeconds: seconds,
  });
  // The request, not just its socket: once a response is written Node no longer ties the two,
  // and a reader of the body (a blob write) would never learn that the body will not come.
  const close = () => {
    request.raw.destroy();
    request.raw.socket.destroy();
  };
  if (reply.sent || reply.raw.headersSent) {
    if (reply.raw.writableFinished) close();
    else reply.raw.once("finish", close).once("close", close);
    return;
  }
  const err = new SluiceError(
    "request_timeout",
    `Request body too slow: fewer than ${need} bytes in ${seconds} s (the minimum rate is ${options.minBytesPerSecond} bytes/s).`,
    { status: 408, type: "invalid_request_error" },
  );
  reply.raw.once("finish", close).once("close", close);
  void reply.status(408).header("connection", "close").type("application/json").send(envelope(err));
}
