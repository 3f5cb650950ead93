/**
 * W9 (a): membership cost in one process. N peers, each a Comm + Membership
 * on the in-memory transport with a VirtualClock, so Fabric's default timing
 * (5 s alive interval, 25 s expiration, 4 s sync) passes in real
 * milliseconds of CPU. Peers bootstrap through 3 seed peers.
 *
 * Commands (each bounded in virtual and real time):
 * - `start`: takes the cold heap baseline, runs the warm-up (below) and takes
 *   the warm baseline, then creates the peers (3 seeds, then the rest, 10
 *   virtual ms later).
 * - `converge`: advances until every view holds every other peer; returns
 *   the virtual time since the last start.
 * - `measure`: advances `intervals` alive intervals and returns the comm
 *   counters (messages, bytes) and the process CPU, per peer per interval.
 * - `memory`: heap used after GC, minus the cold baseline (before the
 *   warm-up) and minus the warm baseline (after it).
 * - `death`: crashes a non-seed peer and advances until every other view
 *   has dropped it, `count` times one after the other (the next crash once
 *   the last is seen by all); returns each draw and their median, in alive
 *   intervals.
 *
 * Warm-up: before the peers exist, `start` builds a throwaway world of
 * `warmPeers` peers (default 10; 0 skips it) with its own clock, transport
 * and random of the same seed, and the same crypto: it joins, converges,
 * runs `warmIntervals` alive intervals (default 2), loses one peer to a
 * crash, has its comms
 * stopped (the connections go, as in `viewMemory`) and then its
 * memberships, and is dropped. V8's compiled code and type feedback for
 * those paths are then in place: the heap they take is process-wide, not
 * per known peer. It runs `warmPasses` times (default 2); what the last
 * pass leaves on the heap is what one pass leaves behind beyond compiled
 * code (the residue). `memory` also reports the machine code V8 compiled
 * after each baseline (code space growth). Module state outlives the
 * warm world: the incarnation counter (src/membership/timestamp.ts; the
 * cell's peers number from the warm world's last incarnation), the fake
 * crypto's key table and the frame slab. A cell that restarts peers and
 * compares incarnation numbers must allow for that.
 *
 * The CPU figure is the whole process: membership, comm, crypto (fake or
 * X.509), the in-memory transport and the virtual clock's settling of async
 * work between timers.
 */
import v8 from "node:v8";
import {
  Comm,
  type CryptoService,
  createPeerMaterial,
  Membership,
  type MemoryListener,
  MemoryNetwork,
  VirtualClock,
  X509CryptoService,
} from "../../../src/index.js";
import type { Init, Json, WorkerSpec } from "../common/ipc.js";
import { memory } from "../common/ipc.js";
import { benchCa, MSP_ID } from "../common/util.js";
import { BenchFakeCrypto } from "./fake-crypto.js";

/** Fabric's peer.gossip.aliveTimeInterval default. */
const aliveMs = 5000;

export interface Peer {
  readonly comm: Comm;
  readonly membership: Membership;
  readonly listener: MemoryListener;
  alive: boolean;
}

/** A deterministic random in [0, 1) (mulberry32); also tools/w9-once.ts's, so that its worlds draw as the cells do. */
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

/** Bytes used by V8's machine code (code space and large code objects): compiled code, not bytecode or feedback. */
function codeBytes(): number {
  let used = 0;
  for (const s of v8.getHeapSpaceStatistics()) if (s.space_name.startsWith("code_")) used += s.space_used_size;
  return used;
}

function cpuUs(since: NodeJS.CpuUsage): number {
  const c = process.cpuUsage(since);
  return c.user + c.system;
}

/** One simulated network: its own clock, transport, random and peers. */
export interface World {
  readonly clock: VirtualClock;
  readonly peers: Peer[];
  add(i: number, crypto: CryptoService): void;
  running(): Peer[];
  /** Every running view holds every other running peer. */
  converged(): boolean;
  /** Advances until `pred` holds; bounded in virtual and real time. Returns the virtual ms it took. */
  advanceUntil(pred: () => boolean, maxVirtualMs: number, stepMs: number): Promise<number>;
  /** Advances until `p` settles (stops need the clock to run); bounded like `advanceUntil`; throws what `p` threw. */
  settle(p: Promise<unknown>): Promise<void>;
  totals(): { messages: number; bytes: number; connections: number };
  /** Stops the running peers' comms (their connections go), then their memberships, and closes their listeners. */
  stop(): Promise<void>;
  /** View entries (alive and dead) over the running peers. */
  known(): number;
}

/** How {@link makeWorld} builds a world. */
interface WorldOptions {
  /** Seed of the world's random (the memberships' choices). */
  readonly seed: number;
  /** Real-time bound of `advanceUntil` and `settle`. */
  readonly maxRealMs: number;
  /** The comms' limit of streams not yet authenticated. */
  readonly maxUnauthenticatedStreams: number;
  /** No bootstrap peers: each peer knows nobody. @default false */
  readonly bare?: boolean;
}

/**
 * A world of `size` peers (made by `add`): every non-seed peer bootstraps
 * through one of three seeds, the seeds through each other, unless `bare`
 * (no bootstrap peers: each peer knows nobody). Also tools/w9-once.ts's.
 */
export function makeWorld(size: number, options: WorldOptions): World {
  const { seed, maxRealMs, maxUnauthenticatedStreams, bare = false } = options;
  const clock = new VirtualClock();
  const net = new MemoryNetwork({ clock });
  const random = seededRandom(seed);
  const wall = () => 1_700_000_000_000 + clock.now();
  const peers: Peer[] = [];
  const worldSeeds = Math.min(3, size);
  const endpointOf = (i: number) => `p${i}:7051`;
  const running = () => peers.filter((p) => p.alive);
  /** Views' sizes (alive members), min-max over the running peers: what a failure reports. */
  const views = () => {
    const sizes = running().map((p) => p.membership.stats().alive);
    return `views ${Math.min(...sizes)}-${Math.max(...sizes)} of ${running().length - 1}`;
  };
  const advanceUntil = async (pred: () => boolean, maxVirtualMs: number, stepMs: number): Promise<number> => {
    const t0 = clock.now();
    const deadline = performance.now() + maxRealMs;
    while (!pred()) {
      if (clock.now() - t0 >= maxVirtualMs) throw new Error(`not reached within ${maxVirtualMs} virtual ms (${views()})`);
      if (performance.now() > deadline)
        throw new Error(`not reached within ${maxRealMs} real ms (virtual ${clock.now() - t0} ms, ${views()})`);
      await clock.advance(stepMs);
    }
    return clock.now() - t0;
  };
  /** Advances until `p` settles (stops need the clock to run); bounded like `advanceUntil`; throws what `p` threw. */
  const settle = async (p: Promise<unknown>): Promise<void> => {
    // Handled at once: a stop that fails while the clock runs is reported here, not as an unhandled rejection.
    let outcome: { error: unknown } | null | undefined;
    void p.then(
      () => {
        outcome = null;
      },
      (error: unknown) => {
        outcome = { error };
      },
    );
    await advanceUntil(() => outcome !== undefined, 60_000, 100);
    if (outcome) throw outcome.error;
  };
  return {
    clock,
    peers,
    add: (i, crypto) => {
      const endpoint = endpointOf(i);
      const comm = new Comm({ crypto, dialer: net.dialer(`p${i}`), clock, options: { maxUnauthenticatedStreams } });
      const listener = net.listen(endpoint, (s) => void comm.handleStream(s));
      const bootstrapPeers = bare
        ? []
        : i < worldSeeds
          ? Array.from({ length: worldSeeds }, (_, j) => j)
              .filter((j) => j !== i)
              .map(endpointOf)
          : [endpointOf(i % worldSeeds)];
      const membership = new Membership({
        comm,
        crypto,
        clock,
        wallClockMs: wall,
        random,
        options: { internalEndpoint: endpoint, externalEndpoint: endpoint, bootstrapPeers },
      });
      peers.push({ comm, membership, listener, alive: true });
    },
    running,
    converged: () => {
      const m = running().length;
      return running().every((p) => p.membership.stats().alive === m - 1);
    },
    advanceUntil,
    settle,
    totals: () => {
      let messages = 0;
      let bytes = 0;
      let connections = 0;
      for (const p of running()) {
        const s = p.comm.stats();
        messages += s.messagesSent;
        bytes += s.bytesSent;
        connections += s.connections.inbound + s.connections.outbound;
      }
      return { messages, bytes, connections };
    },
    stop: async () => {
      // Connections first, memberships running (the cell's `viewMemory`), then the memberships.
      await settle(Promise.all(running().map((p) => p.comm.stop())));
      await settle(Promise.all(running().map((p) => p.membership.stop())));
      for (const p of running()) p.listener.close();
    },
    known: () => running().reduce((s, p) => s + p.membership.stats().alive + p.membership.stats().dead, 0),
  };
}

/** Starts `size` peers as the cell does: the seeds, then the rest 10 virtual ms later. */
export async function populate(w: World, cryptos: readonly CryptoService[]): Promise<void> {
  const worldSeeds = Math.min(3, cryptos.length);
  for (let i = 0; i < worldSeeds; i++) w.add(i, cryptos[i] as CryptoService);
  await w.clock.advance(10);
  for (let i = worldSeeds; i < cryptos.length; i++) w.add(i, cryptos[i] as CryptoService);
}

export async function membershipSim(init: Init): Promise<WorkerSpec> {
  const n = init.opts.num("peers");
  const real = init.opts.str("crypto", "fake") === "x509";
  const maxRealMs = init.opts.num("maxRealS", 120) * 1000;
  const seed = init.opts.num("seed", 9);
  const warmPeers = init.opts.num("warmPeers", 10);
  const warmPasses = init.opts.num("warmPasses", 2);
  const warmIntervals = init.opts.num("warmIntervals", 2);
  // As in the TLS cell and stack c: every non-seed peer joins through one of
  // three seeds within 10 virtual ms, so a seed takes N/3 handshakes at once.
  // With the comm's default (256 streams not yet authenticated) a seed
  // refused those beyond it from 800 peers on, and the refused peers waited
  // for Fabric's 25 s reconnect: a 1,000-peer simulation then measured our
  // admission limit, not membership.
  const maxUnauthenticatedStreams = init.opts.num("maxUnauthenticatedStreams", 4096);
  const worldOptions: WorldOptions = { seed, maxRealMs, maxUnauthenticatedStreams };

  const cryptoFor = (name: string): CryptoService => {
    if (!real) return new BenchFakeCrypto(MSP_ID);
    const m = createPeerMaterial({ mspId: MSP_ID, ca: benchCa(init), commonName: name });
    return new X509CryptoService({
      mspId: MSP_ID,
      certificate: m.identity.certPem,
      privateKey: m.identity.keyPem,
      trustedRoots: { [MSP_ID]: [init.ca.certPem] },
    });
  };

  /** Crashes `victim` (listener closed, membership and comm stopped, no goodbye) and advances until every view has dropped it. */
  const crash = async (w: World, victim: Peer, maxVirtualMs: number, stepMs: number): Promise<number> => {
    victim.alive = false;
    victim.listener.close();
    const stopping = Promise.all([victim.membership.stop(), victim.comm.stop()]);
    const m = w.running().length;
    const took = await w.advanceUntil(() => w.running().every((p) => p.membership.stats().alive === m - 1), maxVirtualMs, stepMs);
    await stopping;
    return took;
  };

  /**
   * The warm-up (see the module comment): a throwaway world through the
   * cell's paths (join, alive, membership request and response, identity
   * pull, a crash and its expiry, comm stop, membership stop), then dropped.
   */
  const warmUp = async (size: number): Promise<void> => {
    const w = makeWorld(size, worldOptions);
    await populate(
      w,
      Array.from({ length: size }, (_, i) => cryptoFor(`warm${i}`)),
    );
    await w.advanceUntil(() => w.converged(), 12 * aliveMs, 250);
    for (let i = 0; i < warmIntervals; i++) await w.clock.advance(aliveMs);
    w.totals();
    w.known();
    // A crash needs a non-seed peer that some other non-seed peer outlives.
    if (size > Math.min(3, size) + 1) await crash(w, w.peers[size - 1] as Peer, 12 * aliveMs, 250);
    await w.stop();
  };

  const w = makeWorld(n, worldOptions);
  const { clock, peers, running, advanceUntil, totals } = w;
  /** The cold baseline (before the warm-up) and the warm one (after it). */
  let cold = { heapUsed: 0, arrayBuffers: 0 };
  let warm = { heapUsed: 0, arrayBuffers: 0 };
  let coldCode = 0;
  let warmCode = 0;
  let lastStart = 0;

  /**
   * Heap and array buffers gained since the cold baseline, in all and per
   * view entry (known peer), and the same since the warm baseline.
   */
  const perKnownPeer = (m: { heapUsed: number; arrayBuffers: number }) => {
    const known = w.known();
    const per = (x: number) => (known > 0 ? x / known : null);
    const delta = m.heapUsed - cold.heapUsed;
    const warmDelta = m.heapUsed - warm.heapUsed;
    return {
      heapDelta: delta,
      knownEntries: known,
      bytesPerKnownPeer: per(delta),
      // Array buffers' contents live outside the V8 heap (kept frames, identities): reported beside it.
      buffersPerKnownPeer: per(m.arrayBuffers - cold.arrayBuffers),
      warmHeapDelta: warmDelta,
      warmBytesPerKnownPeer: per(warmDelta),
      warmBuffersPerKnownPeer: per(m.arrayBuffers - warm.arrayBuffers),
      // Machine code compiled since each baseline (in the heap figures): what the warm-up did not compile ahead.
      codeSinceCold: codeBytes() - coldCode,
      codeSinceWarm: codeBytes() - warmCode,
    };
  };

  return {
    info: { peers: n, crypto: real ? "x509" : "fake", warmPeers },
    handlers: {
      start: async (): Promise<Json> => {
        cold = memory(true);
        coldCode = codeBytes();
        // Passes after the first run on compiled code: what the last one leaves is the residue of one pass.
        const w0 = performance.now();
        const wcpu = process.cpuUsage();
        const passes = warmPeers > 0 ? warmPasses : 0;
        let beforeLast = cold;
        warm = cold;
        warmCode = coldCode;
        const passHeap: number[] = [];
        for (let i = 0; i < passes; i++) {
          await warmUp(warmPeers);
          beforeLast = warm;
          warm = memory(true);
          warmCode = codeBytes();
          passHeap.push(warm.heapUsed - cold.heapUsed);
        }
        const warmUpJson = {
          peers: warmPeers,
          passes,
          realMs: Math.round(performance.now() - w0),
          cpuUs: cpuUs(wcpu),
          // Warm minus cold baseline: compiled code and feedback, and what the passes left.
          fixedHeap: warm.heapUsed - cold.heapUsed,
          fixedBuffers: warm.arrayBuffers - cold.arrayBuffers,
          // Heap after each pass, since the cold baseline.
          passHeap,
          // What the last pass left (from the second on): the residue of one pass, an upper bound (V8 may still compile).
          residueHeap: passes > 1 ? warm.heapUsed - beforeLast.heapUsed : null,
          residueBuffers: passes > 1 ? warm.arrayBuffers - beforeLast.arrayBuffers : null,
        };
        const t0 = performance.now();
        // Identities first (X.509 key generation is not membership cost).
        const cryptos = Array.from({ length: n }, (_, i) => cryptoFor(`sim${i}`));
        const cpu = process.cpuUsage();
        await populate(w, cryptos);
        lastStart = clock.now();
        return { realMs: Math.round(performance.now() - t0), cpuUs: cpuUs(cpu), warmUp: warmUpJson };
      },
      converge: async (a): Promise<Json> => {
        const t0 = performance.now();
        const cpu = process.cpuUsage();
        const since = clock.now() - lastStart;
        const took = await advanceUntil(() => w.converged(), a.num("maxIntervals") * aliveMs, a.num("stepMs", 250));
        const virtualMs = since + took;
        return { virtualMs, intervals: virtualMs / aliveMs, realMs: Math.round(performance.now() - t0), cpuUs: cpuUs(cpu), ...totals() };
      },
      measure: async (a): Promise<Json> => {
        const k = a.num("intervals");
        const before = totals();
        const t0 = performance.now();
        const cpu = process.cpuUsage();
        for (let i = 0; i < k; i++) {
          if (performance.now() - t0 > maxRealMs) throw new Error(`measure: ${i} of ${k} intervals in ${maxRealMs} real ms`);
          await clock.advance(aliveMs);
        }
        const us = cpuUs(cpu);
        const after = totals();
        const m = running().length;
        const per = (x: number) => x / m / k;
        const complete = running().every((p) => p.membership.stats().alive === m - 1);
        return {
          intervals: k,
          peers: m,
          complete,
          messagesPerPeerPerInterval: per(after.messages - before.messages),
          bytesPerPeerPerInterval: per(after.bytes - before.bytes),
          cpuUsPerPeerPerInterval: per(us),
          connectionsPerPeer: after.connections / m,
          realMs: Math.round(performance.now() - t0),
        };
      },
      memory: (): Json => {
        const m = memory(true);
        const per = perKnownPeer(m);
        return { ...per, bytesPerPeer: per.heapDelta / n, rss: m.rss };
      },
      /**
       * Stops every comm (their connections go) but no membership, then
       * measures the heap again: what the views, stores and identities hold
       * on their own. Run last (no membership loop runs after it).
       */
      viewMemory: async (): Promise<Json> => {
        await w.settle(Promise.all(running().map((p) => p.comm.stop())));
        return perKnownPeer(memory(true));
      },
      death: async (a): Promise<Json> => {
        // Each draw crashes the next non-seed peer from the end, once every view has dropped the last
        // one: the lockstep timers make one draw one sample of a wide distribution. A draw tends to end
        // at the same phase of the 5 s alive round as the last (a whole number of rounds after its
        // crash), so each waits k x 1.1 s first: crashes at other phases of the alive and sync rounds.
        const count = Math.min(a.num("count", 1), n - 4);
        const draws: number[] = [];
        const t0 = performance.now();
        const cpu = process.cpuUsage();
        for (let k = 1; k <= count; k++) {
          if (k > 1) await clock.advance((k - 1) * 1100);
          const took = await crash(w, peers[n - k] as Peer, a.num("maxIntervals") * aliveMs, a.num("stepMs", 250));
          draws.push(took / aliveMs);
        }
        const sorted = [...draws].sort((x, y) => x - y);
        const median =
          sorted.length % 2
            ? sorted[(sorted.length - 1) / 2]
            : ((sorted[sorted.length / 2 - 1] ?? 0) + (sorted[sorted.length / 2] ?? 0)) / 2;
        return {
          intervals: median ?? null,
          draws,
          min: sorted[0] ?? null,
          max: sorted[sorted.length - 1] ?? null,
          realMs: Math.round(performance.now() - t0),
          cpuUs: cpuUs(cpu),
        };
      },
    },
  };
}
