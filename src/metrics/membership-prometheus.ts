import { Counter, Gauge, Registry } from "prom-client";
import type { ErrorCode } from "../core/errors.js";
import type { DuplicateKind, MembershipMetrics, RefusedKind } from "../membership/metrics.js";

/**
 * Prometheus metrics of a {@link Membership} (prom-client), in their own
 * registry or one passed in (the comm's, to serve both from one `/metrics`).
 *
 * `gossip_membership_total_peers_known` keeps Fabric's name (Fabric labels it
 * by channel; this view is channel-independent, so it has no label). Other
 * metrics follow Prometheus conventions; labels are low-cardinality.
 */
export class PrometheusMembershipMetrics implements MembershipMetrics {
  /** The registry holding every metric below. */
  readonly registry: Registry;
  private readonly known: Gauge;
  private readonly refusedMessages: Counter<"kind" | "reason">;
  private readonly duplicateMessages: Counter<"kind">;
  private readonly changes: Counter<"type">;
  private readonly sentMessages: Counter<"kind">;

  constructor(registry: Registry = new Registry()) {
    this.registry = registry;
    const r = [registry];
    this.known = new Gauge({
      name: "gossip_membership_total_peers_known",
      help: "Alive members known (Fabric's metric, channel-independent here).",
      registers: r,
    });
    this.refusedMessages = new Counter({
      name: "gossip_membership_refused_total",
      help: "Membership messages (alive, requests, responses, identities) refused, by kind and reason.",
      labelNames: ["kind", "reason"],
      registers: r,
    });
    this.duplicateMessages = new Counter({
      name: "gossip_membership_duplicates_total",
      help: "Alive messages (gossiped, or membership response entries) no newer than the one held: gossip's normal redundancy, by kind.",
      labelNames: ["kind"],
      registers: r,
    });
    this.changes = new Counter({
      name: "gossip_membership_changes_total",
      help: "Membership changes by type (joined, died, revived, updated, removed).",
      labelNames: ["type"],
      registers: r,
    });
    this.sentMessages = new Counter({
      name: "gossip_membership_messages_sent_total",
      help: "Membership messages sent, by kind.",
      labelNames: ["kind"],
      registers: r,
    });
    this.known.set(0);
  }

  totalPeersKnown(count: number): void {
    this.known.set(count);
  }
  refused(kind: RefusedKind, reason: ErrorCode): void {
    this.refusedMessages.labels(kind, reason).inc();
  }
  duplicate(kind: DuplicateKind): void {
    this.duplicateMessages.labels(kind).inc();
  }
  change(type: "joined" | "died" | "revived" | "updated" | "removed"): void {
    this.changes.labels(type).inc();
  }
  sent(kind: "alive" | "membership_request" | "membership_response" | "identity_pull"): void {
    this.sentMessages.labels(kind).inc();
  }
}
