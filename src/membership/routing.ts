/**
 * Where gossiped alive messages go (Fabric's emitter routing for alive
 * messages, §3.4): random alive members, never back to the previous hop, and
 * never across an organization boundary with a secret envelope or about a
 * peer the target's organization must not learn of.
 */
import type { Envelope } from "../gen/gossip/message_pb.js";
import { withoutSecret } from "./alive-message.js";

/** One alive message to route. */
export interface RouteItem {
  readonly envelope: Envelope;
  /** The PKI-ID (hex) it is about. */
  readonly originHex: string;
  /** The origin's external endpoint. */
  readonly originEndpoint: string;
  /** The connection it came from (hex), undefined for our own. */
  readonly fromHex: string | undefined;
}

/** A possible target: an alive member (its organization comes from {@link RoutingContext.orgOf}). */
export interface RouteTarget {
  readonly pkiHex: string;
  /** Its external endpoint. */
  readonly endpoint: string;
}

/** One send: an envelope to targets. */
export interface Route<T extends RouteTarget> {
  readonly envelope: Envelope;
  readonly targets: T[];
}

/** What routing needs. */
export interface RoutingContext<T extends RouteTarget> {
  readonly selfOrg: string;
  readonly peerNum: number;
  /** Alive members, excluding ourselves. */
  readonly members: readonly T[];
  /** Organization of a PKI-ID (hex), if known. */
  readonly orgOf: (pkiHex: string) => string | undefined;
  readonly random: () => number;
}

/** Fisher-Yates shuffle of a copy, with the injected random. */
export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const a = items.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = a[i] as T;
    a[i] = a[j] as T;
    a[j] = t;
  }
  return a;
}

/**
 * Up to `n` random elements of `items` that `pred` accepts: the first `n`
 * accepted of a uniformly random order, drawn lazily (a partial
 * Fisher-Yates), so that picking 3 of 1000 does not shuffle 1000. The
 * permutation is virtual (only the positions it swapped are remembered): no
 * copy of `items`, which made every routed alive message cost O(N) and a
 * peer's interval O(N^2).
 */
export function pickRandom<T>(items: readonly T[], n: number, random: () => number, pred: (t: T) => boolean = () => true): T[] {
  const out: T[] = [];
  if (n <= 0) return out;
  const len = items.length;
  /** Position of the virtual permutation → index into `items`, where it differs from the identity. */
  const moved = new Map<number, number>();
  for (let i = 0; i < len && out.length < n; i++) {
    const j = i + Math.floor(random() * (len - i));
    const picked = moved.get(j) ?? j;
    // Position i is never read again: only position j must remember what it now holds.
    if (j !== i) moved.set(j, moved.get(i) ?? i);
    const t = items[picked] as T;
    if (pred(t)) out.push(t);
  }
  return out;
}

/** Routes one emitted batch of alive messages. */
export function routeAlive<T extends RouteTarget>(items: readonly RouteItem[], ctx: RoutingContext<T>): Route<T>[] {
  const routes: Route<T>[] = [];
  const orgOnly: RouteItem[] = [];
  const rest: RouteItem[] = [];
  for (const it of items) {
    if (it.originEndpoint === "" && ctx.orgOf(it.originHex) === ctx.selfOrg) orgOnly.push(it);
    else rest.push(it);
  }
  if (orgOnly.length > 0) {
    const group = pickRandom(ctx.members, ctx.peerNum, ctx.random, (m) => ctx.orgOf(m.pkiHex) === ctx.selfOrg);
    for (const it of orgOnly) {
      const targets = group.filter((m) => m.pkiHex !== it.fromHex);
      if (targets.length > 0) routes.push({ envelope: it.envelope, targets });
    }
  }
  for (const it of rest) {
    const originOrg = ctx.orgOf(it.originHex);
    if (originOrg === undefined) continue; // "Unable to determine organization of peer"
    const foreign = originOrg !== ctx.selfOrg;
    const picked = pickRandom(ctx.members, ctx.peerNum, ctx.random, (m) => {
      if (m.pkiHex === it.fromHex) return false;
      if (!foreign) return true;
      const org = ctx.orgOf(m.pkiHex);
      return org === ctx.selfOrg || org === originOrg;
    });
    const full: T[] = [];
    const stripped: T[] = [];
    for (const m of picked) {
      if (foreign && m.endpoint === "") continue;
      if (ctx.orgOf(m.pkiHex) === ctx.selfOrg) full.push(m);
      else stripped.push(m);
    }
    if (full.length > 0) routes.push({ envelope: it.envelope, targets: full });
    if (stripped.length > 0) routes.push({ envelope: withoutSecret(it.envelope), targets: stripped });
  }
  return routes;
}
