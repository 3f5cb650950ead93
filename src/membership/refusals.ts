/**
 * Counting and logging of refused membership messages: every refusal is
 * counted (stats and metrics) by kind and ErrorCode; logging is rate-limited
 * per kind, code and sender, and the expected ones (duplicates, unknown
 * identities, budget) log at debug.
 */
import { ErrorCode, type GossipError } from "../core/errors.js";
import type { Logger, LogLimiter } from "../core/logger.js";
import type { GossipMessage } from "../gen/gossip/message_pb.js";
import type { MembershipMetrics, RefusedKind } from "./metrics.js";

const quietCodes: ReadonlySet<ErrorCode> = new Set([ErrorCode.StaleMessage, ErrorCode.UnknownIdentity, ErrorCode.RateLimited]);

/** Refusal counts by kind and code. */
export class Refusals {
  private readonly counts = new Map<RefusedKind, Map<ErrorCode, number>>();

  constructor(
    private readonly metrics: MembershipMetrics,
    private readonly log: Logger,
    private readonly limiter: LogLimiter,
  ) {}

  /** Counts a refusal without logging (the hot path: duplicate alive messages). */
  count(kind: RefusedKind, code: ErrorCode): void {
    const byCode = this.counts.get(kind) ?? new Map<ErrorCode, number>();
    if (byCode.size === 0) this.counts.set(kind, byCode);
    byCode.set(code, (byCode.get(code) ?? 0) + 1);
    this.metrics.refused(kind, code);
  }

  /** Counts and logs (rate-limited) a refusal of a message from `from` (hex PKI-ID). */
  refuse(kind: RefusedKind, error: GossipError, from: string): void {
    this.count(kind, error.code);
    const level = quietCodes.has(error.code) ? "debug" : "warn";
    this.limiter.maybe(`${kind}/${error.code} ${from}`, (suppressed) =>
      this.log[level]({ kind, code: error.code, err: error.message, pkiId: from, suppressed }, "membership message refused"),
    );
  }

  /** Counts as `"<kind>/<code>"` → n. */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [kind, m] of this.counts) for (const [code, n] of m) out[`${kind}/${code}`] = n;
    return out;
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
