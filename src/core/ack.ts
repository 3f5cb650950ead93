/**
 * `sendWithAck`: acknowledgements matched to their waiters (the ack
 * registry), the aggregation of the peers' answers, and the watch on the
 * connection each message went out on.
 */
import { randomBytes } from "node:crypto";
import type { Clock } from "./clock.js";
import type { Connection } from "./connection.js";
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
  /** Made by the first `expect`: most comms never wait for an ack, and an empty Map is ~184 B of heap per comm (W9 bare). */
  private waiters: Map<string, Waiter[]> | undefined;

  constructor(private readonly clock: Clock) {}

  /** Number of acks being waited for. */
  get pending(): number {
    let n = 0;
    if (this.waiters !== undefined) for (const ws of this.waiters.values()) n += ws.length;
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
      waiter.timer = this.clock.setTimeout(() => waiter.reject(new GossipError(ErrorCode.AckTimeout, "timed out")), Math.max(0, timeoutMs));
      this.waiters ??= new Map();
      const waiters = this.waiters;
      const list = waiters.get(topic);
      if (list) list.push(waiter);
      else waiters.set(topic, [waiter]);
    });
  }

  /** Delivers an ack that arrived on a connection authenticated as `pkiHex`. */
  publish(nonce: bigint, pkiHex: string, errorText: string): void {
    const list = this.waiters?.get(`${nonce} ${pkiHex}`);
    if (!list) return;
    for (const w of [...list]) w.resolve(errorText);
  }

  /** Rejects every pending wait with `error` (used when the comm stops). */
  rejectAll(error: GossipError): void {
    if (this.waiters === undefined) return;
    for (const list of [...this.waiters.values()]) {
      for (const w of [...list]) w.reject(error);
    }
  }

  private remove(topic: string, waiter: Waiter): void {
    this.clock.clearTimeout(waiter.timer);
    const list = this.waiters?.get(topic);
    if (!list) return;
    const i = list.indexOf(waiter);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.waiters?.delete(topic);
  }
}

/** Collaborators of an {@link AckSender}. */
export interface AckSenderDeps {
  readonly clock: Clock;
  /** How long an ack may still come after its connection closed (Fabric `connTimeout`). */
  readonly connTimeoutMs: number;
  /** The open connection to `peer`, dialing when needed. */
  getOrDial(peer: RemotePeer): Promise<Connection>;
  /** The connection that serves in place of `conn` if `conn` was replaced meanwhile. */
  current(conn: Connection): Connection;
  /** A dial for `peer` failed (the caller reports the peer as presumed dead). */
  dialFailed(peer: RemotePeer, error: GossipError): void;
}

/** Dial failures (as opposed to refusals and timeouts) that presume a peer dead. */
const dialFailures: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.DialFailed,
  ErrorCode.DialTimeout,
  ErrorCode.TlsFailed,
  ErrorCode.PingFailed,
]);

/**
 * Sends with acknowledgement (Fabric's `SendWithAck`). Keeps nothing per call
 * once the call settled: one close watch per connection, not one reaction per
 * call on the connection's `closed` promise.
 */
export class AckSender {
  /** Per connection, what to run when it closes. */
  /** Made by the first send: most comms never send with ack, and an empty WeakMap is ~136 B per comm (W9 bare). */
  private closeWatchers: WeakMap<Connection, { readonly fns: Set<() => void>; fired: boolean }> | undefined;

  constructor(
    private readonly registry: AckRegistry,
    private readonly deps: AckSenderDeps,
  ) {}

  /**
   * Sends the message `encode` makes with a fresh random nonce to each peer
   * and collects their acknowledgements: resolves at exactly `minAck`
   * successes, or when every peer answered; a peer silent for `timeoutMs`
   * counts as "timed out". An `encode` that throws (`MessageTooLarge`) fails
   * every peer with its error. Never rejects.
   */
  send(
    encode: (nonce: bigint) => Uint8Array,
    timeoutMs: number,
    minAck: number,
    peers: readonly RemotePeer[],
  ): Promise<AggregatedSendResult> {
    if (peers.length === 0) return Promise.resolve(new AggregatedSendResult([]));
    const nonce = randomBytes(8).readBigUInt64BE();
    let frame: Uint8Array;
    try {
      frame = encode(nonce);
    } catch (e) {
      const error = GossipError.from(e);
      return Promise.resolve(new AggregatedSendResult(peers.map((peer) => ({ peer, error }))));
    }
    const deadline = this.deps.clock.now() + timeoutMs;
    return new Promise((resolve) => {
      const results: SendResult[] = [];
      let successes = 0;
      let finished = false;
      for (const peer of peers) {
        void this.sendOne(peer, frame, nonce, deadline).then((error) => {
          if (finished) return;
          results.push(error ? { peer, error } : { peer });
          if (!error) successes++;
          // Fabric's rule, edge cases included: stop at exactly minAck successes, or when all answered.
          if (successes === minAck || results.length === peers.length) {
            finished = true;
            resolve(new AggregatedSendResult(results));
          }
        });
      }
    });
  }

  private async sendOne(peer: RemotePeer, frame: Uint8Array, nonce: bigint, deadline: number): Promise<GossipError | undefined> {
    const { clock, connTimeoutMs } = this.deps;
    let timer: unknown;
    const timedOut = new Promise<never>((_, reject) => {
      timer = clock.setTimeout(() => reject(new GossipError(ErrorCode.AckTimeout, "timed out")), Math.max(0, deadline - clock.now()));
    });
    let graceTimer: unknown;
    let done = false;
    let unwatch = () => {};
    try {
      const conn = this.deps.current(await Promise.race([this.deps.getOrDial(peer), timedOut]));
      const ack = this.registry.expect(nonce, conn.pkiHex, deadline - clock.now());
      ack.catch(() => {});
      // Uncapped (maxBlockedSends bounds fire-and-forget sends): Fabric blocks each SendWithAck, and the caller's timeout bounds this wait.
      try {
        await Promise.race([conn.put(frame, undefined, true), timedOut]);
      } catch (e) {
        // Timed out still waiting for room: take the frame back, so that a
        // caller who was told "timed out" never has it sent later, and
        // timed-out calls to a peer that does not read pile nothing up.
        conn.withdraw(frame);
        throw e;
      }
      // After the connection closes, the ack can still come on a connection
      // that replaced it (the loser of a simultaneous dial flushes before it
      // closes, and the remote answers on the winner). Wait connTimeoutMs for
      // that, then report the close instead of waiting for the deadline.
      const cut = new Promise<never>((_, reject) => {
        unwatch = this.watchClose(conn, () => {
          if (done) return; // answered already: no timer to leak
          const reason = conn.error;
          graceTimer = clock.setTimeout(
            () =>
              reject(
                new GossipError(
                  ErrorCode.Closed,
                  `connection to ${peer.endpoint} closed before the ack${reason ? `: ${reason.message}` : ""}`,
                  {
                    cause: reason,
                    remoteCode: reason?.remoteCode,
                  },
                ),
              ),
            connTimeoutMs,
          );
        });
      });
      cut.catch(() => {});
      const text = await Promise.race([ack, cut]);
      return text === "" ? undefined : new GossipError(ErrorCode.Nack, text);
    } catch (e) {
      const error = GossipError.from(e);
      if (dialFailures.has(error.code)) this.deps.dialFailed(peer, error);
      return error;
    } finally {
      done = true;
      unwatch();
      clock.clearTimeout(timer);
      clock.clearTimeout(graceTimer);
      timedOut.catch(() => {});
    }
  }

  /** Runs `fn` once `conn` has closed (soon, if it has already); returns the unsubscribe. */
  private watchClose(conn: Connection, fn: () => void): () => void {
    this.closeWatchers ??= new WeakMap();
    const closeWatchers = this.closeWatchers;
    let w = closeWatchers.get(conn);
    if (w === undefined) {
      const watch = { fns: new Set<() => void>(), fired: false };
      w = watch;
      closeWatchers.set(conn, watch);
      void conn.closed.then(() => {
        watch.fired = true;
        for (const f of [...watch.fns]) f();
        watch.fns.clear();
      });
    }
    if (w.fired) {
      queueMicrotask(fn);
      return () => {};
    }
    const fns = w.fns;
    fns.add(fn);
    return () => fns.delete(fn);
  }
}
