/** A terminal progress bar for batches: done/total, failed, rate and ETA (quiet when not a TTY). */
import cliProgress from "cli-progress";

/** The status to show: an in_progress batch whose engine is away says so, and for how long. */
export function shownStatus(status: string, waitingSince: number | null | undefined, nowMs = Date.now()): string {
  if (status !== "in_progress" || waitingSince == null) return status;
  const s = Math.max(0, Math.round(nowMs / 1000 - Number(waitingSince)));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const since =
    h > 0 ? `${h}h${String(m).padStart(2, "0")}m` : m > 0 ? `${m}m${String(s % 60).padStart(2, "0")}s` : `${s}s`;
  return `waiting for engine (${since})`;
}

export interface ProgressView {
  update(done: number, failed: number, total: number, status: string): void;
  stop(): void;
}

export function createProgress(stream: NodeJS.WriteStream = process.stderr): ProgressView {
  const started = Date.now();
  let startDone = -1;
  if (!stream.isTTY) {
    let lastLine = 0;
    return {
      update(done, failed, total, status) {
        if (Date.now() - lastLine < 5000 && done < total) return;
        lastLine = Date.now();
        stream.write(`${status}: ${done}/${total} done, ${failed} failed\n`);
      },
      stop() {},
    };
  }
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: "{status} |{bar}| {value}/{total} done · {failed} failed · {rate}/s · ETA {eta_s}",
      hideCursor: true,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(1, 0, { status: "starting", failed: 0, rate: "0", eta_s: "?" });
  return {
    update(done, failed, total, status) {
      if (startDone < 0) startDone = done;
      const secs = (Date.now() - started) / 1000;
      const rate = secs > 0 ? (done - startDone) / secs : 0;
      const eta = rate > 0 ? `${Math.round((total - done) / rate)}s` : "?";
      bar.setTotal(Math.max(total, 1));
      bar.update(done, { status, failed, rate: rate.toFixed(1), eta_s: eta });
    },
    stop() {
      bar.stop();
    },
  };
}
