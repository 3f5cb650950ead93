/**
 * Clock readings kept per known peer, in whole milliseconds. The real clock
 * (`performance.now()`) has fractions, and V8 keeps a number that is not a
 * small integer as a separate 16-byte heap object for each field holding it
 * (once one such number was stored, for every object of that shape): a few
 * per known peer. Whole milliseconds below 2^31 (24 days of uptime on the
 * real clock, on Node's 64-bit builds) stay inside the object. Membership's timing is in seconds;
 * a reading at most 1 ms early changes none of it.
 */
export function wholeMs(ms: number): number {
  return Math.floor(ms);
}
