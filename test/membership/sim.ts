/**
 * A simulated network of membership peers: Comm + Membership per peer on the
 * in-memory transport with a VirtualClock, so that Fabric's real intervals
 * (5 s alive, 25 s expiry, 500 s purge) pass in milliseconds.
 */
import { Comm } from "../../src/core/comm.js";
import type { CommOptions } from "../../src/core/config.js";
import type { CryptoService } from "../../src/core/crypto.js";
import type { Logger } from "../../src/core/logger.js";
import { MemoryNetwork } from "../../src/core/memory-transport.js";
import type { ReceivedMessage } from "../../src/core/received-message.js";
import type { Dialer } from "../../src/core/transport.js";
import { VirtualClock } from "../../src/core/virtual-clock.js";
import { Membership, type MembershipOptions } from "../../src/membership/index.js";
import type { MembershipMetrics } from "../../src/membership/metrics.js";
import { FakeCrypto, FakeTrust } from "../helpers/fake-crypto.js";

/** A deterministic random in [0, 1) (mulberry32). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A peer of a {@link Sim}. */
export interface SimPeer {
  readonly name: string;
  readonly endpoint: string;
  readonly crypto: CryptoService;
  readonly comm: Comm;
  membership: Membership;
  /** Crash: stop listening (cuts its streams), stop membership and comm. */
  kill(): Promise<void>;
  readonly alive: boolean;
}

/** Options of {@link Sim.add}. */
export interface AddOptions {
  readonly org?: string;
  readonly bootstrap?: readonly string[];
  readonly external?: boolean | string;
  readonly crypto?: CryptoService;
  readonly options?: Partial<MembershipOptions>;
  readonly comm?: CommOptions;
  readonly logger?: Logger;
  readonly metrics?: MembershipMetrics;
  /** Don't start a Membership (a raw comm peer, for forging messages). */
  readonly raw?: boolean;
  /** Wraps the peer's dialer (to count or observe dials). */
  readonly wrapDialer?: (d: Dialer) => Dialer;
  /** Listen on this endpoint instead of `name:7051`. */
  readonly endpoint?: string;
}

/** A simulated network. */
export class Sim {
  readonly clock = new VirtualClock();
  readonly net = new MemoryNetwork({ clock: this.clock });
  readonly trust = new FakeTrust();
  readonly peers: SimPeer[] = [];
  private readonly random: () => number;
  private readonly halts: (() => Promise<void>)[] = [];
  /** Wall clock derived from the virtual one (inc_num, expiry). */
  readonly wall = () => 1_700_000_000_000 + this.clock.now();

  constructor(seed = 1) {
    this.random = seededRandom(seed);
  }

  /** Starts peer `name` listening on `name:7051`. */
  add(name: string, o: AddOptions = {}): SimPeer {
    const endpoint = o.endpoint ?? `${name}:7051`;
    const crypto = o.crypto ?? new FakeCrypto(o.org ?? "Org1MSP", this.trust, undefined, this.wall);
    const comm = new Comm({
      crypto,
      dialer: (o.wrapDialer ?? ((d) => d))(this.net.dialer(name)),
      clock: this.clock,
      options: o.comm,
    });
    const listener = this.net.listen(endpoint, (s) => void comm.handleStream(s));
    const external = o.external === undefined || o.external === true ? endpoint : o.external === false ? "" : o.external;
    const make = () =>
      new Membership({
        comm,
        crypto,
        clock: this.clock,
        wallClockMs: this.wall,
        random: this.random,
        logger: o.logger,
        metrics: o.metrics,
        options: {
          internalEndpoint: endpoint,
          externalEndpoint: external,
          bootstrapPeers: o.bootstrap ?? [],
          ...o.options,
        },
      });
    let alive = true;
    const halt = () => {
      alive = false;
      listener.close();
      return Promise.all([peer.membership?.stop(), comm.stop()]).then(() => undefined);
    };
    this.halts.push(() => (alive ? halt() : Promise.resolve()));
    const peer: SimPeer = {
      name,
      endpoint,
      crypto,
      comm,
      membership: o.raw ? (undefined as unknown as Membership) : make(),
      get alive() {
        return alive;
      },
      kill: async () => {
        if (!alive) return;
        await this.settle(halt());
      },
    };
    this.peers.push(peer);
    return peer;
  }

  /** Peers still running. */
  running(): SimPeer[] {
    return this.peers.filter((p) => p.alive && p.membership !== undefined);
  }

  /** Advances until every running peer sees `n` alive members (or throws). */
  async converge(n: (p: SimPeer) => number, maxMs = 60_000, stepMs = 500): Promise<number> {
    return this.clock.advanceUntil(() => this.running().every((p) => p.membership.alive().length === n(p)), { maxMs, stepMs });
  }

  /** Stops everything (comm drains run on virtual time). */
  async close(): Promise<void> {
    await this.settle(Promise.all(this.halts.map((h) => h())).then(() => undefined));
  }

  /** Advances virtual time until `p` settles (bounded: 60 s of virtual time). */
  async settle(p: Promise<void>): Promise<void> {
    let done = false;
    void p.then(() => {
      done = true;
    });
    await this.clock.advanceUntil(() => done, { stepMs: 100, maxMs: 60_000 });
    await p;
  }
}

/** Collects the messages `comm` receives that `pred` accepts (until `stop`). */
export function record(comm: Comm, pred: (rm: ReceivedMessage) => boolean): { readonly got: ReceivedMessage[]; stop(): void } {
  const sub = comm.accept(pred);
  const got: ReceivedMessage[] = [];
  void (async () => {
    for await (const m of sub) got.push(m);
  })();
  return { got, stop: () => sub.close() };
}

/** A dialer that records every endpoint it dials or pings. */
export function countingDialer(d: Dialer, log: string[]): Dialer {
  return {
    openStream: (endpoint, o) => {
      log.push(`open ${endpoint}`);
      return d.openStream(endpoint, o);
    },
    ping: (endpoint, o) => {
      log.push(`ping ${endpoint}`);
      return d.ping(endpoint, o);
    },
  };
}
