// The order in which a group cell (W1, W2, W4 of bench/run.mjs) gives its
// stacks their slices. See bench/README.md, "W1 / W2" and "W4".

/** Cycles found so far, by number of stacks. */
const cycles = new Map();

/**
 * The n - 1 turns (each an order of the stack indices 0..n-1) that, run one
 * after the other and then again from the first, make every stack follow
 * every other stack exactly once per cycle, and never itself: read as one
 * sequence of n(n - 1) slices, wrapping from the last to the first, each of
 * the n(n - 1) ordered pairs (x then y, x != y) appears once. Such a cycle
 * exists for every n we run (2-7 checked); a depth-first search finds the
 * first one in index order (a few dozen steps for n <= 7), so the order is
 * the same in every run. For n = 5: 0 1 2 3 4 | 0 2 1 4 3 | 0 3 2 4 1 |
 * 3 1 0 4 2; for n = 4: 0 1 2 3 | 0 2 1 3 | 1 0 3 2.
 */
export function balancedCycle(n) {
  const known = cycles.get(n);
  if (known) return known;
  let turns;
  if (n < 2) turns = [[...Array(n).keys()]];
  else {
    const length = n * (n - 1);
    const seq = [...Array(n).keys()];
    const used = new Set();
    for (let i = 1; i < n; i++) used.add((i - 1) * n + i);
    const extend = (pos) => {
      if (pos === length) return !used.has(seq[length - 1] * n + seq[0]);
      const turnStart = pos - (pos % n);
      for (let x = 0; x < n; x++) {
        const pair = seq[pos - 1] * n + x;
        if (x === seq[pos - 1] || used.has(pair) || seq.slice(turnStart, pos).includes(x)) continue;
        seq[pos] = x;
        used.add(pair);
        if (extend(pos + 1)) return true;
        used.delete(pair);
        seq.length = pos;
      }
      return false;
    };
    if (!extend(n)) throw new Error(`no balanced turn cycle for ${n} stacks`);
    turns = Array.from({ length: n - 1 }, (_, k) => seq.slice(k * n, k * n + n));
  }
  cycles.set(n, turns);
  return turns;
}

/**
 * The order in which turn `turn` of a group cell visits `stacks`: turn
 * `turn mod (n - 1)` of balancedCycle(n), with stack index i standing for
 * `stacks[(i + shift) mod n]`. So any n - 1 consecutive turns (a W1/W2 round
 * of 4 slices with 5 stacks; half a W4 round of 8 slices with 5 stacks),
 * with the slice just before them, have every stack preceded once by every
 * other stack; raw and gossip-connect are in every turn, so in every round.
 * `shift` renames the stacks (W4 shifts by its round, so that not the same
 * stack opens every round); a rename keeps the balance. Turn may be
 * negative (-1 is the turn before turn 0). With W1's stacks
 * (raw, rawpb, grpc, gossip, go): raw rawpb grpc gossip go | raw grpc rawpb
 * go gossip | raw gossip grpc go rawpb | gossip rawpb raw go grpc, then
 * again. With W4's (raw, grpc, gossip, go): raw grpc gossip go | raw gossip
 * grpc go | grpc raw go gossip.
 */
export function turnOrder(stacks, turn, shift = 0) {
  const n = stacks.length;
  if (n === 0) return [];
  const turns = balancedCycle(n);
  const k = ((turn % turns.length) + turns.length) % turns.length;
  return turns[k].map((i) => stacks[(i + shift) % n]);
}
