/**
 * Time as core sees it. Core never calls `setTimeout` or `Date.now` directly,
 * so tests can drive timeouts with a manual clock.
 */
export interface Clock {
  /** Milliseconds since an arbitrary epoch; only differences matter. */
  now(): number;
  /** Runs `fn` once after `ms`; returns a handle for {@link Clock.clearTimeout}. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancels a pending {@link Clock.setTimeout}; a no-op for a fired or unknown handle. */
  clearTimeout(handle: unknown): void;
}

/** The real clock (monotonic `performance.now()`, Node timers). */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/**
 * {@link Clock.setTimeout} for housekeeping (sweeps of state that merely
 * ages): on the real clock the timer does not keep the process alive, so a
 * comm that is left running with nothing else to do never holds up exit.
 */
export function housekeepingTimeout(clock: Clock, fn: () => void, ms: number): unknown {
  const handle = clock.setTimeout(fn, ms);
  (handle as { unref?: () => void } | undefined)?.unref?.();
  return handle;
}

/**
 * Resolves after `ms` on `clock`, or rejects with the signal's reason when
 * `signal` aborts first.
 */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clock.clearTimeout(handle);
      reject(signal?.reason);
    };
    const handle = clock.setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * An AbortSignal that aborts with `reason()` after `ms` on `clock`: the
 * clock-driven `AbortSignal.timeout`. Call `clear()` when done so that no
 * timer is left behind.
 */
export function timeoutSignal(clock: Clock, ms: number, reason: () => unknown): { readonly signal: AbortSignal; clear(): void } {
  const controller = new AbortController();
  const handle = clock.setTimeout(() => controller.abort(reason()), ms);
  return { signal: controller.signal, clear: () => clock.clearTimeout(handle) };
}

/**
 * A clock reading in whole milliseconds, for readings kept per peer. The real
 * clock (`performance.now()`) has fractions, and V8 keeps a number that is not
 * a small integer as a separate 16-byte heap object for each field holding it
 * (once one such number was stored, for every object of that shape). Whole
 * milliseconds below 2^31 (24 days of uptime on the real clock, on Node's
 * 64-bit builds) stay inside the object. Our timing is in seconds; a reading
 * at most 1 ms early changes none of it.
 */
export function wholeMs(ms: number): number {
  return Math.floor(ms);
}
