import type { ErrorCode } from "../core/errors.js";

/** What membership refuses, by kind of message. */
export type RefusedKind = "alive" | "membership_request" | "membership_response" | "identity";

/**
 * Where a duplicate arrived: a gossiped alive message, or an entry of a
 * membership response, that is no newer than what we already hold.
 */
export type DuplicateKind = "alive" | "membership_response";

/**
 * What membership counts. `gossip-connect/metrics` has a Prometheus
 * implementation ({@link PrometheusMembershipMetrics}); the default counts nothing.
 */
export interface MembershipMetrics {
  /** Alive members now (Fabric `gossip_membership_total_peers_known`). */
  totalPeersKnown(count: number): void;
  /** A message (or response entry) was refused, and why: each is worth a look (see docs/security.md). */
  refused(kind: RefusedKind, reason: ErrorCode): void;
  /**
   * An alive message (gossiped, or a response entry) no newer than what we
   * hold arrived: the normal cost of epidemic gossip, not a refusal.
   */
  duplicate(kind: DuplicateKind): void;
  /** A membership change: joined, died, revived, removed. */
  change(type: "joined" | "died" | "revived" | "updated" | "removed"): void;
  /** Membership messages we sent, by kind. */
  sent(kind: "alive" | "membership_request" | "membership_response" | "identity_pull"): void;
}

/** Metrics that count nothing. */
export const noopMembershipMetrics: MembershipMetrics = {
  totalPeersKnown() {},
  refused() {},
  duplicate() {},
  change() {},
  sent() {},
};
