/**
 * The logging interface core writes to: the subset of pino's API that
 * Fastify's `app.log` provides, so the server plugin passes its logger
 * through unchanged. Object first, message second, as pino wants.
 */
export interface Logger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

/** A logger that discards everything. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};

/**
 * Logs at most one line per `key` per `intervalMs` and counts the rest, so a
 * peer that repeats the same fault cannot flood the log (Fabric #5458).
 * Suppressed lines are reported as `suppressed: n` on the next line logged for
 * that key.
 */
export class LogLimiter {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly now: () => number,
    private readonly intervalMs = 10_000,
    private readonly maxKeys = 1024,
  ) {}

  /**
   * Calls `log` with the number of lines suppressed since the last call for
   * `key`, or does nothing (and counts) when one was logged within the interval.
   */
  maybe(key: string, log: (suppressed: number) => void): void {
    const t = this.now();
    const entry = this.last.get(key);
    if (entry && t - entry.at < this.intervalMs) {
      entry.suppressed++;
      return;
    }
    if (!entry && this.last.size >= this.maxKeys) {
      // Forget the oldest key rather than grow without bound under a flood of distinct keys.
      const oldest = this.last.keys().next();
      if (!oldest.done) this.last.delete(oldest.value);
    }
    this.last.set(key, { at: t, suppressed: 0 });
    log(entry?.suppressed ?? 0);
  }
}
