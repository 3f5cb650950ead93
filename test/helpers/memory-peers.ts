/**
 * Test fixtures for the comm without sockets: peers on a {@link MemoryNetwork}
 * driven by a {@link VirtualClock}, with the fast {@link TestCrypto} unless a
 * test brings its own. {@link memTest} fails a test that leaves a stream, a
 * timer or a running comm behind.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { Comm, type ConnectionEvent, type PresumedDeadEvent } from "../../src/core/comm.js";
import type { CommOptions } from "../../src/core/config.js";
import type { CryptoService } from "../../src/core/crypto.js";
import type { RemotePeer } from "../../src/core/identity.js";
import { type MemoryListener, MemoryNetwork, type MemoryNetworkOptions } from "../../src/core/memory-transport.js";
import type { CommMetrics } from "../../src/core/metrics.js";
import type { ReceivedMessage } from "../../src/core/received-message.js";
import type { Dialer } from "../../src/core/transport.js";
import { VirtualClock } from "../../src/core/virtual-clock.js";
import { TestCrypto, type TestCryptoOptions } from "./test-crypto.js";

/** A comm on the memory network. */
export interface MemPeer {
  readonly host: string;
  readonly endpoint: string;
  readonly comm: Comm;
  readonly crypto: CryptoService;
  /** Its listener; `listener.close()` is the host's crash. */
  readonly listener: MemoryListener;
  /** Messages received by its catch-all subscription (when started with `collect`). */
  readonly received: ReceivedMessage[];
  /** Its presumed-dead and connection events, as they came. */
  readonly dead: PresumedDeadEvent[];
  readonly events: ConnectionEvent[];
  /** Dials this peer started. */
  readonly dials: { count: number };
  /** Stops the comm (advancing the clock while it drains). */
  stop(): Promise<void>;
}

/** Options of {@link MemCluster.peer}. */
export interface MemPeerOptions extends TestCryptoOptions {
  readonly crypto?: CryptoService;
  readonly options?: CommOptions;
  readonly metrics?: CommMetrics;
  /** Subscribe to everything and keep it in `received` (default true). */
  readonly collect?: boolean;
  /** Acknowledge every message received (implies a subscription). */
  readonly ack?: boolean | ((m: ReceivedMessage) => Error | undefined);
  /** Wraps the peer's dialer. */
  readonly wrapDialer?: (d: Dialer) => Dialer;
  /** Don't listen (a peer that only dials). */
  readonly noListen?: boolean;
  /** The SHA-256 of its TLS certificate: its streams count as TLS and the handshake binds it. */
  readonly certHash?: Uint8Array;
}

/** A virtual clock, a memory network and the peers on it. */
export class MemCluster {
  readonly clock = new VirtualClock();
  readonly net: MemoryNetwork;
  readonly peers: MemPeer[] = [];
  private hostSeq = 0;

  constructor(options: Omit<MemoryNetworkOptions, "clock"> = {}) {
    this.net = new MemoryNetwork({ clock: this.clock, ...options });
  }

  /** Starts a peer on host `h<n>`, endpoint `h<n>:7051`. */
  peer(o: MemPeerOptions = {}): MemPeer {
    const host = `h${++this.hostSeq}`;
    const endpoint = `${host}:7051`;
    const crypto = o.crypto ?? new TestCrypto(o);
    const dials = { count: 0 };
    const base = this.net.dialer(host, { certHash: o.certHash });
    const counted: Dialer = {
      openStream: (ep, opts) => {
        dials.count++;
        return base.openStream(ep, opts);
      },
      ping: (ep, opts) => base.ping(ep, opts),
    };
    const comm = new Comm({
      crypto,
      dialer: o.wrapDialer ? o.wrapDialer(counted) : counted,
      clock: this.clock,
      options: { dialTimeoutMs: 3000, ...o.options },
      metrics: o.metrics,
    });
    const listener = o.noListen
      ? { endpoint, close() {} }
      : this.net.listen(endpoint, (s) => void comm.handleStream(s), { certHash: o.certHash });
    const received: ReceivedMessage[] = [];
    if (o.collect !== false || o.ack) {
      const sub = comm.accept();
      void (async () => {
        for await (const m of sub) {
          received.push(m);
          if (o.ack) void m.ack(typeof o.ack === "function" ? o.ack(m) : undefined);
        }
      })();
    }
    const dead: PresumedDeadEvent[] = [];
    const events: ConnectionEvent[] = [];
    void (async () => {
      for await (const e of comm.presumedDead) dead.push(e);
    })();
    void (async () => {
      for await (const e of comm.connectionEvents) events.push(e);
    })();
    const p: MemPeer = {
      host,
      endpoint,
      comm,
      crypto,
      listener,
      received,
      dead,
      events,
      dials,
      stop: async () => {
        listener.close();
        const stopping = comm.stop();
        let done = false;
        void stopping.then(() => (done = true));
        await this.clock.advanceUntil(() => done, { stepMs: 100, maxMs: 60_000 });
      },
    };
    this.peers.push(p);
    return p;
  }

  /** Lets pending work settle and moves virtual time by `ms`. */
  advance(ms = 0): Promise<void> {
    return this.clock.advance(ms);
  }

  /** Advances until `cond` holds; fails after `maxMs` of virtual time. */
  until(cond: () => boolean, maxMs = 30_000, stepMs = 10): Promise<number> {
    return this.clock.advanceUntil(cond, { stepMs, maxMs });
  }

  /** Stops every peer and checks that nothing is left: no stream, no timer. */
  async close(): Promise<void> {
    for (const p of this.peers) await p.stop();
    await this.clock.advance(0);
    assert.equal(this.net.openStreams, 0, "streams left open after every comm stopped");
    assert.equal(this.clock.pending, 0, "timers left pending after every comm stopped");
  }
}

/** `p` as a send target. */
export function target(p: MemPeer): RemotePeer {
  return { endpoint: p.endpoint, pkiId: p.comm.pkiId };
}

/**
 * A test on a fresh {@link MemCluster}: the cluster is closed after the body
 * and the test fails when a stream or timer is left behind.
 */
export function memTest(name: string, body: (c: MemCluster) => Promise<void>, options: Omit<MemoryNetworkOptions, "clock"> = {}): void {
  it(name, async () => {
    const c = new MemCluster(options);
    let failed = false;
    try {
      await body(c);
    } catch (e) {
      failed = true;
      throw e;
    } finally {
      // A failing body keeps its own error; a passing one must leave nothing open.
      if (failed) await c.close().catch(() => {});
      else await c.close();
    }
  });
}
