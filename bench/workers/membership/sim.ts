/**
 * W9 (a): membership cost in one process. N peers, each a Comm + Membership
 * on the in-memory transport with a VirtualClock, so Fabric's default timing
 * (5 s alive interval, 25 s expiration, 4 s sync) passes in real
 * milliseconds of CPU. Peers bootstrap through 3 seed peers.
 *
 * Commands (each bounded in virtual and real time):
 * - `start`: creates the peers (3 seeds, then the rest, 10 virtual ms later).
 * - `converge`: advances until every view holds every other peer; returns
 *   the virtual time since the last start.
 * - `measure`: advances `intervals` alive intervals and returns the comm
 *   counters (messages, bytes) and the process CPU, per peer per interval.
 * - `memory`: heap used after GC, minus the heap before `start`.
 * - `death`: crashes a non-seed peer and advances until every other view
 *   has dropped it, `count` times one after the other (the next crash once
 *   the last is seen by all); returns each draw and their median, in alive
 *   intervals.
 *
 * The CPU figure is the whole process: membership, comm, crypto (fake or
 * X.509), the in-memory transport and the virtual clock's settling of async
 * work between timers.
 */
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

interface Peer {
  readonly comm: Comm;
  readonly membership: Membership;
  readonly listener: MemoryListener;
  alive: boolean;
}

/** A deterministic random in [0, 1) (mulberry32). */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function cpuUs(since: NodeJS.CpuUsage): number {
  const c = process.cpuUsage(since);
  return c.user + c.system;
}

export async function membershipSim(init: Init): Promise<WorkerSpec> {
  const n = init.opts.num("peers");
  const seeds = Math.min(3, n);
  const real = init.opts.str("crypto", "fake") === "x509";
  const maxRealMs = init.opts.num("maxRealS", 120) * 1000;
  // As in the TLS cell and stack c: every non-seed peer joins through one of
  // three seeds within 10 virtual ms, so a seed takes N/3 handshakes at once.
  // With the comm's default (256 streams not yet authenticated) a seed
  // refused those beyond it from 800 peers on, and the refused peers waited
  // for Fabric's 25 s reconnect: a 1,000-peer simulation then measured our
  // admission limit, not membership.
  const maxUnauthenticatedStreams = init.opts.num("maxUnauthenticatedStreams", 4096);
  const clock = new VirtualClock();
  const net = new MemoryNetwork({ clock });
  const random = seededRandom(init.opts.num("seed", 9));
  const wall = () => 1_700_000_000_000 + clock.now();
  const peers: Peer[] = [];
  let heapBefore = 0;
  let buffersBefore = 0;
  let lastStart = 0;

  const cryptoFor = (i: number): CryptoService => {
    if (!real) return new BenchFakeCrypto(MSP_ID);
    const m = createPeerMaterial({ mspId: MSP_ID, ca: benchCa(init), commonName: `sim${i}` });
    return new X509CryptoService({
      mspId: MSP_ID,
      certificate: m.identity.certPem,
      privateKey: m.identity.keyPem,
      trustedRoots: { [MSP_ID]: [init.ca.certPem] },
    });
  };
  const endpointOf = (i: number) => `p${i}:7051`;
  const add = (i: number, crypto: CryptoService) => {
    const endpoint = endpointOf(i);
    const comm = new Comm({ crypto, dialer: net.dialer(`p${i}`), clock, options: { maxUnauthenticatedStreams } });
    const listener = net.listen(endpoint, (s) => void comm.handleStream(s));
    const bootstrapPeers =
      i < seeds
        ? Array.from({ length: seeds }, (_, j) => j)
            .filter((j) => j !== i)
            .map(endpointOf)
        : [endpointOf(i % seeds)];
    const membership = new Membership({
      comm,
      crypto,
      clock,
      wallClockMs: wall,
      random,
      options: { internalEndpoint: endpoint, externalEndpoint: endpoint, bootstrapPeers },
    });
    peers.push({ comm, membership, listener, alive: true });
  };
  const running = () => peers.filter((p) => p.alive);
  /** Views' sizes (alive members), min-max over the running peers: what a failure reports. */
  const views = () => {
    const sizes = running().map((p) => p.membership.stats().alive);
    return `views ${Math.min(...sizes)}-${Math.max(...sizes)} of ${running().length - 1}`;
  };
  /** Advances until `pred` holds; bounded in virtual and real time. */
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
  const totals = () => {
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
  };

  /** Heap and array buffers gained since `start`, in all and per view entry (known peer). */
  const perKnownPeer = (m: { heapUsed: number; arrayBuffers: number }) => {
    const known = running().reduce((s, p) => s + p.membership.stats().alive + p.membership.stats().dead, 0);
    const delta = m.heapUsed - heapBefore;
    const buffers = m.arrayBuffers - buffersBefore;
    return {
      heapDelta: delta,
      knownEntries: known,
      bytesPerKnownPeer: known > 0 ? delta / known : null,
      // Array buffers' contents live outside the V8 heap (kept frames, identities): reported beside it.
      buffersPerKnownPeer: known > 0 ? buffers / known : null,
    };
  };

  return {
    info: { peers: n, crypto: real ? "x509" : "fake" },
    handlers: {
      start: async (): Promise<Json> => {
        const m0 = memory(true);
        heapBefore = m0.heapUsed;
        buffersBefore = m0.arrayBuffers;
        const t0 = performance.now();
        // Identities first (X.509 key generation is not membership cost).
        const cryptos = Array.from({ length: n }, (_, i) => cryptoFor(i));
        const cpu = process.cpuUsage();
        for (let i = 0; i < seeds; i++) add(i, cryptos[i] as CryptoService);
        await clock.advance(10);
        for (let i = seeds; i < n; i++) add(i, cryptos[i] as CryptoService);
        lastStart = clock.now();
        return { realMs: Math.round(performance.now() - t0), cpuUs: cpuUs(cpu) };
      },
      converge: async (a): Promise<Json> => {
        const t0 = performance.now();
        const cpu = process.cpuUsage();
        const since = clock.now() - lastStart;
        const took = await advanceUntil(
          () => running().every((p) => p.membership.stats().alive === n - 1),
          a.num("maxIntervals") * aliveMs,
          a.num("stepMs", 250),
        );
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
        const stops = Promise.all(running().map((p) => p.comm.stop()));
        let done = false;
        void stops.then(() => {
          done = true;
        });
        await advanceUntil(() => done, 60_000, 100);
        await stops;
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
          const victim = peers[n - k] as Peer;
          victim.alive = false;
          victim.listener.close();
          const stopping = Promise.all([victim.membership.stop(), victim.comm.stop()]);
          const took = await advanceUntil(
            () => running().every((p) => p.membership.stats().alive === n - 1 - k),
            a.num("maxIntervals") * aliveMs,
            a.num("stepMs", 250),
          );
          await stopping;
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
