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
  /**
   * Made on the first line logged: most limiters (one per comm, one per
   * membership) never log, and an empty Map is ~184 B of heap each (W9 bare).
   */
  private last: Map<string, { at: number; suppressed: number }> | undefined;

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
    this.last ??= new Map();
    const last = this.last;
    const entry = last.get(key);
    if (entry && t - entry.at < this.intervalMs) {
      entry.suppressed++;
      return;
    }
    if (!entry && last.size >= this.maxKeys) {
      // Forget the oldest key rather than grow without bound under a flood of distinct keys.
      const oldest = last.keys().next();
      if (!oldest.done) last.delete(oldest.value);
    }
    last.set(key, { at: t, suppressed: 0 });
    log(entry?.suppressed ?? 0);
  }
}
