/**
 * Returns `value` if it is neither `undefined` nor `null`; otherwise throws an Error naming
 * `what`, so a test that expected something (a peer, an event, a regex group) fails at that
 * line with a message instead of a TypeError further on.
 */
export function must<T>(value: T | undefined | null, what: string): T {
  if (value === undefined || value === null) throw new Error(`expected ${what}, got ${String(value)}`);
  return value;
}
