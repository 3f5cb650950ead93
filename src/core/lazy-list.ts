/**
 * Lists that most holders leave empty (a connection's queues and waiters):
 * they start as {@link noItems}, one shared frozen array, and get an array of
 * their own on their first push. An empty array costs 32 bytes of heap, and a
 * connection had six of them for good (per connection end, so per known peer
 * in a full mesh).
 */

/** The shared empty list: frozen, so that a push or shift into it throws rather than reaching every holder. */
export const noItems: readonly never[] = Object.freeze([]);

/** `list` with `item` appended: `list` itself, or a new array when `list` is {@link noItems}. */
export function pushed<T>(list: readonly T[], item: T): T[] {
  if (list === noItems) return [item];
  (list as T[]).push(item);
  return list as T[];
}

/** Removes and returns the first item of `list`, or undefined when it is empty (never touches {@link noItems}). */
export function shifted<T>(list: readonly T[]): T | undefined {
  return list.length === 0 ? undefined : (list as T[]).shift();
}

/** Removes the item at `index` of `list` and returns it (undefined when out of range, `list` untouched). */
export function removedAt<T>(list: readonly T[], index: number): T | undefined {
  if (index < 0 || index >= list.length) return undefined;
  return (list as T[]).splice(index, 1)[0];
}
