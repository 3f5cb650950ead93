import { setMaxListeners } from "node:events";
import type { Clock } from "./clock.js";
import type { Connection } from "./connection.js";
import { ErrorCode, GossipError } from "./errors.js";
import { bytesEqual, type HexTaggedPeer, peerPkiHex, pkiIdHex, type RemotePeer, remotePkiHex } from "./identity.js";

/** Collaborators of a {@link ConnectionStore}. */
export interface ConnectionStoreDeps {
  /**
   * Dials `peer` and returns an authenticated connection that is not yet
   * registered (handshake and expected-PKI-ID rules already applied).
   */
  dial(peer: RemotePeer, signal: AbortSignal): Promise<Connection>;
  /** Connections (open plus closing) allowed per remote PKI-ID. */
  readonly maxConnectionsPerPeer: number;
  /** Our own PKI-ID, lower-case hex: the tie-break of simultaneous dials compares it. */
  readonly selfPkiHex: string;
  /** How long after its registration a connection counts as part of a simultaneous dial. */
  readonly simultaneousWindowMs: number;
  readonly clock: Clock;
  /** A connection was registered. */
  onRegistered(conn: Connection): void;
  /** A registered connection closed. */
  onUnregistered(conn: Connection): void;
}

function stopping(): GossipError {
  return new GossipError(ErrorCode.Stopping, "conn store is closing");
}

/**
 * The connections of a comm, one per remote PKI-ID (Fabric's connStore),
 * without Fabric's quirks Q1 and Q2. Guarantees:
 *
 * - At most one open connection per remote PKI-ID: registering a newer one
 *   drains the older (newest wins).
 * - Concurrent dials to one destination (same PKI-ID, or same endpoint when
 *   the PKI-ID is unknown) are coalesced into one dial.
 * - Simultaneous dial (we dial a peer while it dials us, so each side holds
 *   one fresh connection of each direction): both sides keep the same one,
 *   the connection dialed by the smaller PKI-ID, and drain the other. Fabric
 *   has no tie-break here (behaviour doc 5.4): each side keeps its inbound
 *   one, so both drop both and peers that send to each other in step redial
 *   forever. Outside that window (`simultaneousWindowMs` after the older
 *   connection registered) the newest connection wins, as in Fabric.
 * - An inbound connection that was registered while our dial failed serves
 *   the send instead of the error.
 * - A send with an unknown PKI-ID finds the connection dialed to its endpoint
 *   instead of dialing anew each time (Fabric's Q1).
 * - A closing connection removes its own entries only (Fabric's Q2: a
 *   replaced connection's clean-up must not remove its replacement).
 * - After `shutdown()` nothing is dialed or registered and every connection is
 *   drained.
 */
export class ConnectionStore {
  private readonly byPki = new Map<string, Connection>();
  private readonly byEndpoint = new Map<string, Connection>();
  /**
   * Dials in flight by dial key; undefined while there are none (the steady
   * state), and so is {@link ConnectionStore.shutdownController}: both kept
   * for good were ~950 B of heap per comm (W9 bare).
   */
  private dials: Map<string, Promise<Connection>> | undefined;
  /**
   * Registered connections of a PKI-ID beyond the one `byPki` holds (replaced
   * or closed ones still draining, or the loser of a simultaneous dial), only
   * while there are any: `live` counts them with it. A count per peer for
   * good cost a third table per comm (~45 B per connection end in a full
   * mesh), where most peers have one connection and no entry here. Made on
   * first use, as {@link ConnectionStore.extras} (an empty Map or Set is
   * ~150-180 B per comm, W9 bare).
   */
  private extraPerPeer: Map<string, number> | undefined;
  /**
   * Registered connections that `byPki` does not hold (replaced, closed by
   * PKI-ID or losers of a simultaneous dial, all draining): with `byPki`'s,
   * every registered connection. Usually empty: a set of every connection
   * cost a table per comm, ~45 B per connection end in a full mesh. Made on
   * first use.
   */
  private extras: Set<Connection> | undefined;
  /**
   * Aborts the dials in flight at shutdown; made for the first dial in
   * flight, dropped with the last (an AbortController with its signal is
   * ~760 B of heap).
   */
  private shutdownController: AbortController | undefined;
  private seq = 0;
  private closing = false;
  /**
   * The last PKI-ID {@link ConnectionStore.lookup} found and its connection:
   * senders reuse their RemotePeer objects, so the next send to the same
   * array is answered by comparing its bytes with the connection's PKI-ID,
   * without its hex and two map lookups. Forgotten whenever `byPki` changes.
   */
  private hitPki: Uint8Array | undefined;
  private hitConn: Connection | undefined;
  /**
   * A copy of `hitPki`'s bytes when it was found: a bytes-to-bytes compare
   * proves the array was not changed in place since. Comparing with the
   * connection's hex instead was 11 % of W2's sender CPU (two char codes and
   * two table reads a byte: ~4x a byte compare).
   */
  private hitBytes: Uint8Array | undefined;

  constructor(private readonly deps: ConnectionStoreDeps) {}

  /** The signal every dial listens on (aborted at shutdown). */
  private get shutdownSignal(): AbortSignal {
    if (this.shutdownController === undefined) {
      this.shutdownController = new AbortController();
      // Every dial in flight listens on this signal (dial, then Ping), and a
      // fan-out dials many peers at once: not a leak (each dial removes its
      // listener), so no MaxListenersExceededWarning.
      setMaxListeners(0, this.shutdownController.signal);
    }
    return this.shutdownController.signal;
  }

  /** Registered connections, open or closing. */
  connections(): Connection[] {
    return this.extras === undefined ? [...this.byPki.values()] : [...this.byPki.values(), ...this.extras];
  }

  /** The open connection that serves `peer`, found by PKI-ID or, when none is given, by endpoint. */
  lookup(peer: RemotePeer): Connection | undefined {
    const tagged = (peer as Partial<HexTaggedPeer>)[remotePkiHex];
    if (tagged !== undefined) {
      const conn = this.byPki.get(tagged);
      return conn?.state === "open" ? conn : undefined;
    }
    const pki = peer.pkiId;
    if (pki === undefined || pki.length === 0) {
      const conn = this.byEndpoint.get(peer.endpoint);
      return conn?.state === "open" ? conn : undefined;
    }
    const hit = this.hitConn;
    if (hit !== undefined && pki === this.hitPki && hit.state === "open" && bytesEqual(pki, this.hitBytes)) return hit;
    const conn = this.byPki.get(pkiIdHex(pki));
    if (conn?.state !== "open") return undefined;
    this.hitPki = pki;
    this.hitConn = conn;
    this.hitBytes = new Uint8Array(pki); // a copy (a Buffer's `slice` would be a view)
    return conn;
  }

  /**
   * `conn` if it is still open, otherwise the open connection that replaced
   * it (same PKI-ID), if any. Callers of {@link ConnectionStore.getOrDial}
   * use it when they resume: a simultaneous dial may have replaced the
   * connection between the dial's end and their turn.
   */
  current(conn: Connection): Connection {
    if (conn.state === "open") return conn;
    const now = this.byPki.get(conn.pkiHex);
    return now?.state === "open" ? now : conn;
  }

  /**
   * The open connection for `peer`, dialing it when there is none. Rejects
   * with the dial's error, or `Stopping` after shutdown.
   */
  getOrDial(peer: RemotePeer): Promise<Connection> {
    if (this.closing) return Promise.reject(stopping());
    const found = this.lookup(peer);
    if (found) return Promise.resolve(found);
    const key = dialKey(peer);
    const inFlight = this.dials?.get(key);
    if (inFlight) return inFlight;
    const startSeq = this.seq;
    const dial = this.deps.dial(peer, this.shutdownSignal).then(
      (conn) => this.adopt(conn, peer, startSeq),
      (e: unknown) => {
        const arrived = this.arrivedSince(peer, startSeq);
        if (arrived) return arrived;
        throw e;
      },
    );
    this.dials ??= new Map();
    const dials = this.dials;
    const tracked = dial.finally(() => {
      dials.delete(key);
      if (dials.size === 0 && this.dials === dials && !this.closing) {
        // No dial listens on the signal any more: the next one gets a new one.
        this.dials = undefined;
        this.shutdownController = undefined;
      }
    });
    dials.set(key, tracked);
    return tracked;
  }

  /**
   * Registers an authenticated connection (inbound, or an outbound one this
   * store dialed). Drains the connection it replaces. Throws `RateLimited`
   * when the remote already has `maxConnectionsPerPeer` connections, and
   * `Stopping` after shutdown; the caller then closes `conn`.
   */
  register(conn: Connection, dialedEndpoint?: string): void {
    if (this.closing) throw stopping();
    const live = this.live(conn.pkiHex);
    if (live >= this.deps.maxConnectionsPerPeer) {
      throw new GossipError(
        ErrorCode.RateLimited,
        `too many connections for PKI-ID ${conn.pkiHex} (maxConnectionsPerPeer ${this.deps.maxConnectionsPerPeer})`,
      );
    }
    // Whichever of `conn` and the one it joins `byPki` keeps, the others are extras.
    if (live > 0) {
      this.extraPerPeer ??= new Map();
      this.extraPerPeer.set(conn.pkiHex, live);
    }
    conn.registeredSeq = ++this.seq;
    conn.registeredAt = Math.floor(this.deps.clock.now());
    const old = this.byPki.get(conn.pkiHex);
    const oldWins = old !== undefined && old !== conn && this.simultaneous(old, conn) && this.dialer(old) < this.dialer(conn);
    if (oldWins) this.addExtra(conn);
    else {
      if (old !== undefined && old !== conn) this.addExtra(old);
      this.byPki.set(conn.pkiHex, conn);
      this.hitConn = undefined;
      if (dialedEndpoint !== undefined) this.bindEndpoint(dialedEndpoint, conn);
      // Sends by endpoint only follow the peer to its replacement connection.
      if (old !== undefined && old !== conn) for (const ep of this.unbindEndpoints(old)) this.bindEndpoint(ep, conn);
    }
    this.deps.onRegistered(conn);
    // Closed already (it is told of closes through its connections' ConnectionHooks.onClosed from now on).
    if (conn.settled) this.connectionClosed(conn);
    if (oldWins) void conn.drain();
    else if (old && old !== conn) void old.drain();
  }

  /** True when `old` and `conn` are the two halves of a simultaneous dial. */
  private simultaneous(old: Connection, conn: Connection): boolean {
    return (
      old.state === "open" &&
      old.info.direction !== conn.info.direction &&
      this.deps.clock.now() - old.registeredAt < this.deps.simultaneousWindowMs
    );
  }

  /** PKI-ID (hex) of the side that dialed `conn`. */
  private dialer(conn: Connection): string {
    return conn.info.direction === "outbound" ? this.deps.selfPkiHex : conn.pkiHex;
  }

  /** Drains and forgets the connection of `pkiHex`, if any. Returns whether there was one. */
  closeByPki(pkiHex: string): boolean {
    const conn = this.byPki.get(pkiHex);
    if (!conn) return false;
    this.byPki.delete(pkiHex);
    this.addExtra(conn);
    // Still registered until it closed: an extra from now on.
    this.extraPerPeer ??= new Map();
    const extraPerPeer = this.extraPerPeer;
    extraPerPeer.set(pkiHex, (extraPerPeer.get(pkiHex) ?? 0) + 1);
    this.hitConn = undefined;
    this.unbindEndpoints(conn);
    void conn.drain();
    return true;
  }

  /** Drains and forgets the connection dialed to `endpoint`, if any. */
  closeByEndpoint(endpoint: string): boolean {
    const conn = this.byEndpoint.get(endpoint);
    return conn ? this.closeByPki(conn.pkiHex) : false;
  }

  /**
   * Stops dialing (dials in progress are aborted), refuses registrations, and
   * drains every connection. Resolves when all are closed. Idempotent.
   */
  async shutdown(): Promise<void> {
    this.closing = true;
    this.shutdownController?.abort(stopping());
    if (this.dials !== undefined) await Promise.allSettled([...this.dials.values()]);
    await Promise.all(this.connections().map((c) => c.drain()));
  }

  private adopt(conn: Connection, peer: RemotePeer, startSeq: number): Connection {
    if (this.closing) {
      conn.abort(stopping());
      throw stopping();
    }
    const current = this.byPki.get(conn.pkiHex);
    if (current && current !== conn && current.state === "open") {
      // The remote dialed us while we dialed it: the tie-break decides (the
      // remote decides the same way). A connection of the same direction
      // registered meanwhile (a dial under another endpoint) serves us as is.
      const arrivedDuringDial = current.registeredSeq > startSeq;
      const theirsWins = this.simultaneous(current, conn) ? this.dialer(current) < this.dialer(conn) : arrivedDuringDial;
      if (theirsWins) {
        void conn.drain();
        this.bindEndpoint(peer.endpoint, current);
        return current;
      }
    }
    try {
      this.register(conn, peer.endpoint);
    } catch (e) {
      conn.abort(GossipError.from(e));
      throw e;
    }
    return conn;
  }

  private arrivedSince(peer: RemotePeer, startSeq: number): Connection | undefined {
    if (peer.pkiId === undefined || peer.pkiId.length === 0) return undefined;
    const c = this.byPki.get(pkiIdHex(peer.pkiId));
    return c?.state === "open" && c.registeredSeq > startSeq ? c : undefined;
  }

  /**
   * @private A connection this store registered closed: the connections'
   * {@link ConnectionHooks.onClosed}, which their owner wires to this store.
   */
  connectionClosed(conn: Connection): void {
    if (conn.registeredSeq === 0) return;
    this.unregister(conn);
  }

  private unregister(conn: Connection): void {
    if (this.byPki.get(conn.pkiHex) === conn) {
      this.byPki.delete(conn.pkiHex);
      this.hitConn = undefined;
    } else {
      // Both go once empty (usually: extras only drain), as they came.
      this.extras?.delete(conn);
      if (this.extras?.size === 0) this.extras = undefined;
      const extra = (this.extraPerPeer?.get(conn.pkiHex) ?? 1) - 1;
      // More than 0 only from a count the map holds.
      if (extra > 0) this.extraPerPeer?.set(conn.pkiHex, extra);
      else {
        this.extraPerPeer?.delete(conn.pkiHex);
        if (this.extraPerPeer?.size === 0) this.extraPerPeer = undefined;
      }
    }
    this.unbindEndpoints(conn);
    this.deps.onUnregistered(conn);
  }

  /** Registered connections (open plus closing) of a PKI-ID. */
  private live(pkiHex: string): number {
    return (this.byPki.has(pkiHex) ? 1 : 0) + (this.extraPerPeer?.get(pkiHex) ?? 0);
  }

  private addExtra(conn: Connection): void {
    this.extras ??= new Set();
    this.extras.add(conn);
  }

  /** Sends to `endpoint` (with no PKI-ID) go to `conn` from now on. */
  private bindEndpoint(endpoint: string, conn: Connection): void {
    const prev = this.byEndpoint.get(endpoint);
    if (prev === conn) return;
    if (prev !== undefined) {
      const eps = prev.storeEndpoints;
      if (eps === endpoint) prev.storeEndpoints = undefined;
      else if (typeof eps === "object") {
        const i = eps.indexOf(endpoint);
        if (i >= 0) eps.splice(i, 1);
      }
    }
    this.byEndpoint.set(endpoint, conn);
    const eps = conn.storeEndpoints;
    if (eps === undefined) conn.storeEndpoints = endpoint;
    else if (typeof eps === "string") conn.storeEndpoints = [eps, endpoint];
    else eps.push(endpoint);
  }

  /** Forgets every endpoint that leads to `conn`; returns them. */
  private unbindEndpoints(conn: Connection): readonly string[] {
    const eps = conn.storeEndpoints;
    if (eps === undefined) return [];
    conn.storeEndpoints = undefined;
    const list = typeof eps === "string" ? [eps] : eps;
    for (const ep of list) if (this.byEndpoint.get(ep) === conn) this.byEndpoint.delete(ep);
    return list;
  }
}

/** The key dials to `peer` are coalesced by: its PKI-ID, or its endpoint when the PKI-ID is unknown. */
export function dialKey(peer: RemotePeer): string {
  const hex = peerPkiHex(peer);
  return hex !== "" ? hex : `@${peer.endpoint}`;
}
