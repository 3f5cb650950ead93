/**
 * Counting and logging of refused membership messages, and counting of
 * duplicates. A refusal is worth a look: every one is counted (stats and
 * metrics) by kind and ErrorCode and logged, rate-limited per kind, code and
 * sender (the expected ones, unknown identities and budget, at debug). A
 * duplicate (an alive message no newer than what we hold, which epidemic
 * gossip delivers by several paths) is only counted, by kind, apart from the
 * refusals (see docs/membership.md, "Duplicates and refusals").
 */
import { ErrorCode, type GossipError } from "../core/errors.js";
import type { Logger, LogLimiter } from "../core/logger.js";
import type { GossipMessage } from "../gen/gossip/message_pb.js";
import type { DuplicateKind, MembershipMetrics, RefusedKind } from "./metrics.js";

const quietCodes: ReadonlySet<ErrorCode> = new Set([ErrorCode.UnknownIdentity, ErrorCode.RateLimited]);

/** Refusal counts by kind and code, and duplicate counts by kind. */
export class Refusals {
  private readonly counts = new Map<RefusedKind, Map<ErrorCode, number>>();
  private readonly duplicates = new Map<DuplicateKind, number>();

  constructor(
    private readonly metrics: MembershipMetrics,
    private readonly log: Logger,
    private readonly limiter: LogLimiter,
  ) {}

  /** Counts a duplicate (the hot path: not logged). */
  duplicate(kind: DuplicateKind): void {
    this.duplicates.set(kind, (this.duplicates.get(kind) ?? 0) + 1);
    this.metrics.duplicate(kind);
  }

  /** Counts and logs (rate-limited) a refusal of a message from `from` (hex PKI-ID). */
  refuse(kind: RefusedKind, error: GossipError, from: string): void {
    const byCode = this.counts.get(kind) ?? new Map<ErrorCode, number>();
    if (byCode.size === 0) this.counts.set(kind, byCode);
    byCode.set(error.code, (byCode.get(error.code) ?? 0) + 1);
    this.metrics.refused(kind, error.code);
    const level = quietCodes.has(error.code) ? "debug" : "warn";
    this.limiter.maybe(`${kind}/${error.code} ${from}`, (suppressed) =>
      this.log[level]({ kind, code: error.code, err: error.message, pkiId: from, suppressed }, "membership message refused"),
    );
  }

  /** Refusal counts as `"<kind>/<code>"` → n. */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [kind, m] of this.counts) for (const [code, n] of m) out[`${kind}/${code}`] = n;
    return out;
  }

  /** Duplicate counts as kind → n. */
  duplicateSnapshot(): Record<string, number> {
    return Object.fromEntries(this.duplicates);
  }
}

/** The refusal kind of a membership message. */
export function kindOf(m: GossipMessage): RefusedKind {
  switch (m.content.case) {
    case "aliveMsg":
      return "alive";
    case "memReq":
      return "membership_request";
    case "memRes":
      return "membership_response";
    default:
      return "identity";
  }
}
