import type { Clock } from "./clock.js";
import { ErrorCode, GossipError } from "./errors.js";
import type { RemotePeer } from "./identity.js";

/** The outcome of `sendWithAck` for one peer. */
export interface SendResult {
  /** The peer the message was sent to. */
  readonly peer: RemotePeer;
  /** Undefined when the peer acknowledged without error. */
  readonly error?: GossipError;
}

/**
 * The outcome of `sendWithAck` over all peers (Fabric's AggregatedSendResult).
 * Holds the results gathered until `minAck` successes were reached or every
 * peer answered; later answers are not included.
 */
export class AggregatedSendResult {
  constructor(readonly results: readonly SendResult[]) {}

  /** Results without error. */
  get ackCount(): number {
    let n = 0;
    for (const r of this.results) if (!r.error) n++;
    return n;
  }

  /** Results with an error (a nack text, "timed out", a send failure). */
  get nackCount(): number {
    return this.results.length - this.ackCount;
  }

  /**
   * Fabric's JSON summary, keys sorted as Go's `encoding/json` sorts map keys:
   * `{"failures":{"<error text>":n},"successes":n}`, each part omitted when empty.
   */
  toString(): string {
    const failures: Record<string, number> = {};
    for (const r of this.results) {
      if (r.error) failures[r.error.message] = (failures[r.error.message] ?? 0) + 1;
    }
    const out: Record<string, unknown> = {};
    const acks = this.ackCount;
    if (acks < this.results.length) {
      out.failures = Object.fromEntries(Object.entries(failures).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    if (acks > 0) out.successes = acks;
    return JSON.stringify(out);
  }
}

interface Waiter {
  readonly resolve: (errorText: string) => void;
  readonly reject: (e: GossipError) => void;
  timer: unknown;
}

/**
 * Matches incoming acknowledgements to pending `sendWithAck` calls by topic
 * `"<nonce> <hex PKI-ID of the connection it arrived on>"` (Fabric's
 * interceptAcks): an ack counts only when it comes from the authenticated
 * peer the message went to. Acks without a waiter are discarded.
 */
export class AckRegistry {
  private readonly waiters = new Map<string, Waiter[]>();

  constructor(private readonly clock: Clock) {}

  /** Number of acks being waited for. */
  get pending(): number {
    let n = 0;
    for (const ws of this.waiters.values()) n += ws.length;
    return n;
  }

  /**
   * Waits for the ack of `nonce` from `pkiHex`. Resolves with the ack's error
   * text ("" for success); rejects with `AckTimeout` ("timed out") after
   * `timeoutMs`.
   */
  expect(nonce: bigint, pkiHex: string, timeoutMs: number): Promise<string> {
    const topic = `${nonce} ${pkiHex}`;
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve: (text) => {
          this.remove(topic, waiter);
          resolve(text);
        },
        reject: (e) => {
          this.remove(topic, waiter);
          reject(e);
        },
        timer: undefined,
      };
      waiter.timer = this.clock.setTimeout(
        () => waiter.reject(new GossipError(ErrorCode.AckTimeout, "timed out")),
        Math.max(0, timeoutMs),
      );
      const list = this.waiters.get(topic);
      if (list) list.push(waiter);
      else this.waiters.set(topic, [waiter]);
    });
  }

  /** Delivers an ack that arrived on a connection authenticated as `pkiHex`. */
  publish(nonce: bigint, pkiHex: string, errorText: string): void {
    const list = this.waiters.get(`${nonce} ${pkiHex}`);
    if (!list) return;
    for (const w of [...list]) w.resolve(errorText);
  }

  /** Rejects every pending wait with `error` (used when the comm stops). */
  rejectAll(error: GossipError): void {
    for (const list of [...this.waiters.values()]) {
      for (const w of [...list]) w.reject(error);
    }
  }

  private remove(topic: string, waiter: Waiter): void {
    this.clock.clearTimeout(waiter.timer);
    const list = this.waiters.get(topic);
    if (!list) return;
    const i = list.indexOf(waiter);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.waiters.delete(topic);
  }
}
