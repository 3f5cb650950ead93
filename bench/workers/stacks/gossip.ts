/**
 * Stack (c): gossip-connect through its public API only.
 *
 * - Measured peers are Fastify apps from `createGossipServer`, used through
 *   `app.gossip` (the Comm): `send`, `accept` + `respond`/`ack`,
 *   `sendWithAck`, `probe`, `handshake`, `stats`, `connections`.
 * - Senders use `overflowPolicy: "block"` and `await comm.send(...)` for
 *   back-pressure (the documented way); the W7 hub keeps Fabric's "drop".
 * - W4's Ping on an open connection uses `GossipClient` from
 *   `gossip-connect/client` (the Comm has no Ping on an existing connection;
 *   `probe` dials a fresh one), in gossip-client.ts: the client worker, whose
 *   app (`gossipPeerClient`) exists only once a command needs it.
 * - The many remote peers of W6 and W7 only dial out, so they are plain
 *   `Comm`s (public: `Comm`, `X509CryptoService`, `PeerDialer`) without a
 *   Fastify server; each has its own identity.
 *
 * Every peer trusts the benchmark CA; since all benchmark peers share
 * 127.0.0.1, the per-address handshake rate limit is raised.
 */

import type { GossipMessage } from "../../../src/gen/gossip/message_pb.js";
import {
  Comm,
  type CommOptions,
  createGossipServer,
  dataMessage,
  type GossipFastifyInstance,
  PeerDialer,
  type PeerMaterial,
  pkiIdFromHex,
  pkiIdHex,
  type ReceivedMessage,
  type RemotePeer,
  X509CryptoService,
} from "../../../src/index.js";
import type { Handler, Init, Json, WorkerSpec } from "../common/ipc.js";
import { pbControl } from "../common/pb.js";
import {
  latencyJson,
  MSP_ID,
  material,
  now,
  payloadBytes,
  pool,
  ReplyRouter,
  sampleRss,
  sleep,
  timedLoop,
  wallNow,
  withTimeout,
} from "../common/util.js";
import { CHANNEL, HELLO_BASE, SYNC_BASE } from "../common/wire.js";
import type { PeerCommand } from "./gossip-client.js";

const callTimeoutMs = 20_000;

/**
 * The data message `seq`, built with `dataMessage` (the public builder of
 * data messages; byte for byte the message of wire.ts and pb.ts).
 */
function gossipDataMessage(seq: number, data: Uint8Array): GossipMessage {
  const n = BigInt(seq);
  return dataMessage({ nonce: n, channel: CHANNEL, seqNum: n, data });
}

/** Options of every benchmark peer: Fabric's defaults, plus what a loopback benchmark needs. */
const baseOptions: CommOptions = {
  // All benchmark peers dial from 127.0.0.1: the default 50 handshakes/s per address would refuse W6/W7.
  maxHandshakesPerSecondPerAddress: 1_000_000,
  maxUnauthenticatedStreams: 4096,
  // 200 simultaneous TLS + handshakes on 2 loaded cores may take longer than Fabric's 2-3 s defaults.
  dialTimeoutMs: 15_000,
  connTimeoutMs: 15_000,
};

function peerOptions(init: Init, m: PeerMaterial) {
  const ca = init.ca.certPem;
  return {
    identity: { mspId: MSP_ID, certificate: m.identity.certPem, privateKey: m.identity.keyPem, trustedRoots: { [MSP_ID]: [ca] } },
    tls: init.tls ? { cert: m.tlsServer.certPem, key: m.tlsServer.keyPem, ca: [ca] } : undefined,
    clientTls: init.tls ? { ca: [ca], cert: m.tlsClient.certPem, key: m.tlsClient.keyPem } : undefined,
  };
}

async function gossipApp(
  init: Init,
  name: string,
  options: CommOptions,
  listen: boolean,
): Promise<{ app: GossipFastifyInstance; endpoint: string }> {
  const app = await createGossipServer({ ...peerOptions(init, material(init, name)), options: { ...baseOptions, ...options } });
  let endpoint = "";
  if (listen) {
    await app.listen({ host: "127.0.0.1", port: 0 });
    const addr = app.server.address();
    if (addr === null || typeof addr === "string") throw new Error("no address");
    endpoint = `127.0.0.1:${addr.port}`;
  } else {
    await app.ready();
  }
  return { app, endpoint };
}

/** A Comm without a server, for peers that only dial out. */
function lightComm(init: Init, name: string, options: CommOptions): Comm {
  const o = peerOptions(init, material(init, name));
  const opts = { ...baseOptions, ...options };
  return new Comm({
    crypto: new X509CryptoService(o.identity),
    dialer: new PeerDialer({ tls: o.clientTls, options: opts }),
    options: opts,
  });
}

function targetOf(endpoint: string, pkiId: string): RemotePeer {
  return pkiId === "" ? { endpoint } : { endpoint, pkiId: pkiIdFromHex(pkiId) };
}

/** Routes every received message's nonce to waiters (sync and echo replies). */
function routeReplies(comm: Comm, router: ReplyRouter<number>): void {
  void (async () => {
    for await (const m of comm.accept()) router.deliver(Number(m.message.nonce));
  })();
}

/** Sends a sync message to `peers` and waits until each answered it. */
async function sync(comm: Comm, router: ReplyRouter<number>, nonce: number, peers: readonly RemotePeer[]): Promise<void> {
  const replies = router.expect(nonce, peers.length);
  await comm.send(pbControl(nonce, "empty"), ...peers);
  await withTimeout(replies, callTimeoutMs, `sync with ${peers.length} peer(s)`);
}

// --- server ------------------------------------------------------------------

interface GossipServer {
  readonly comm: Comm;
  readonly endpoint: string;
  received: number;
  /** W8: where a relay forwards every message (set by its `relayTo` call). */
  relay?: { readonly peer: RemotePeer; readonly pkiHex: string; readonly replies: ReplyRouter<number> };
}

/**
 * W8: forwards a sync to the relay's target and answers it once the target
 * answered, so that a sync ends a run only when everything arrived there.
 */
async function relaySync(comm: Comm, relay: NonNullable<GossipServer["relay"]>, m: ReceivedMessage): Promise<void> {
  const reply = relay.replies.expect(Number(m.message.nonce));
  await comm.forward(m, relay.peer);
  await withTimeout(reply, callTimeoutMs, "relayed sync");
  await m.respond(m.message);
}

/**
 * Modes: `sink` counts data messages, `echo` answers each with `respond`,
 * `hub` (W7) keeps Fabric's drop policy, `relay` (W8) forwards every message
 * as received (`comm.forward`) to the peer given by `relayTo`.
 */
async function startServer(init: Init, mode: string, name: string): Promise<GossipServer> {
  const { app, endpoint } = await gossipApp(init, name, { overflowPolicy: mode === "hub" ? "drop" : "block" }, true);
  const comm = app.gossip;
  const state: GossipServer = { comm, endpoint, received: 0 };
  void (async () => {
    for await (const m of comm.accept()) {
      const c = m.message.content.case;
      const relay = state.relay;
      if (relay !== undefined) {
        if (c === "dataMsg") {
          state.received++;
          await comm.forward(m, relay.peer);
        } else if (c === "empty") {
          if (pkiIdHex(m.connection.pkiId) === relay.pkiHex) relay.replies.deliver(Number(m.message.nonce));
          else void relaySync(comm, relay, m);
        }
        continue;
      }
      if (c === "dataMsg") {
        state.received++;
        if (mode === "echo") await m.respond(m.message);
      } else if (c === "empty") {
        await m.respond(m.message);
      }
    }
  })();
  return state;
}

export async function gossipServer(init: Init): Promise<WorkerSpec> {
  const mode = init.opts.str("mode", "sink");
  const s = await startServer(init, mode, "gossip-server");
  const comm = s.comm;
  const data = payloadBytes(init.opts.num("hubSize", 1024));
  let seq = 1;
  const peerById = (id: string): RemotePeer => {
    const c = comm.connections().find((x) => pkiIdHex(x.pkiId) === id);
    if (!c) throw new Error(`no connection from ${id}`);
    return { endpoint: c.endpoint, pkiId: c.pkiId };
  };
  return {
    info: { endpoint: s.endpoint, pkiId: pkiIdHex(comm.pkiId) },
    handlers: {
      received: () => s.received,
      relayTo: async (a) => {
        const peer = targetOf(a.str("endpoint"), a.str("pkiId", ""));
        const replies = new ReplyRouter<number>();
        // Connect first (one sync answered by the target), then relay.
        const nonce = SYNC_BASE - 1;
        const answered = replies.expect(nonce);
        s.relay = { peer, pkiHex: a.str("pkiId", ""), replies };
        await comm.send(pbControl(nonce, "empty"), peer);
        await withTimeout(answered, callTimeoutMs, "relay connect");
        return true;
      },
      stats: () => JSON.parse(JSON.stringify(comm.stats())) as Json,
      waitConns: async (a) => {
        const n = a.num("n");
        const end = now() + a.num("seconds", 60) * 1000;
        while (comm.stats().connections.inbound < n && now() < end) await sleep(20);
        return comm.stats().connections.inbound;
      },
      ackRound: async (a) => {
        const peers = a.strs("ids").map(peerById);
        let failures = 0;
        const lat = await timedLoop(a.num("count"), a.num("seconds"), async () => {
          const r = await comm.sendWithAck(gossipDataMessage(seq++, data), 5000, peers.length, ...peers);
          if (r.ackCount !== peers.length) failures++;
        });
        if (failures > 0) throw new Error(`sendWithAck: ${failures} round(s) without every ack`);
        return latencyJson(lat);
      },
      stall: async (a) => {
        const peer = peerById(a.str("id"));
        const batch = a.num("batch");
        const before = comm.stats();
        let attempted = 0;
        const samples = await sampleRss(
          a.num("seconds"),
          a.num("sampleMs", 1000),
          () => {
            for (let i = 0; i < batch; i++) void comm.send(gossipDataMessage(seq++, data), peer);
            attempted += batch;
          },
          a.num("tickMs", 10),
        );
        const after = comm.stats();
        const dropped = after.overflow - before.overflow;
        return { samples, sent: attempted - dropped, dropped };
      },
    },
  };
}

// --- client ------------------------------------------------------------------

/**
 * The client worker's commands that need a gossip peer: an app that does not
 * listen, with its Comm's replies routed to waiters. The client worker
 * (gossip-client.ts) builds it on the first of these commands only.
 */
export async function gossipPeerClient(init: Init): Promise<Readonly<Record<PeerCommand, Handler>>> {
  const { app } = await gossipApp(init, "gossip-client", { overflowPolicy: "block" }, false);
  const comm = app.gossip;
  const router = new ReplyRouter<number>();
  routeReplies(comm, router);
  let target: RemotePeer | undefined;
  let peers: RemotePeer[] = [];
  let seq = 1;
  let syncSeq = SYNC_BASE;
  const need = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`${what}: not connected`);
    return v;
  };
  const sendFor = async (to: readonly RemotePeer[], size: number, seconds: number, maxCount: number): Promise<number> => {
    const data = payloadBytes(size);
    const end = now() + seconds * 1000;
    let count = 0;
    for (;;) {
      await comm.send(gossipDataMessage(seq++, data), ...to);
      count++;
      if ((count & 31) === 0 && (count >= maxCount || now() >= end)) break;
    }
    return count;
  };
  return {
    connect: async (a) => {
      target = targetOf(a.str("endpoint"), a.str("pkiId", ""));
      await sync(comm, router, syncSeq++, [target]);
      return true;
    },
    stream: async (a) => {
      const t = need(target, "stream");
      const cpu0 = process.cpuUsage();
      const t0 = now();
      const count = await sendFor([t], a.num("size"), a.num("seconds"), a.num("maxCount", 1e9));
      await sync(comm, router, syncSeq++, [t]);
      const ms = now() - t0;
      const cpu = process.cpuUsage(cpu0);
      return { count, ms, cpuUs: cpu.user + cpu.system };
    },
    echo: async (a) => {
      const t = need(target, "echo");
      const data = payloadBytes(a.num("size"));
      const lat = await timedLoop(a.num("count"), a.num("seconds"), async () => {
        const nonce = seq++;
        const reply = router.expect(nonce);
        await comm.send(gossipDataMessage(nonce, data), t);
        await withTimeout(reply, callTimeoutMs, "echo");
      });
      return latencyJson(lat);
    },
    probe: async (a) => {
      const peer = { endpoint: a.str("endpoint") };
      return latencyJson(await timedLoop(a.num("count"), a.num("seconds"), () => comm.probe(peer)));
    },
    setup: async (a) => {
      const peer = targetOf(a.str("endpoint"), a.str("pkiId", ""));
      return latencyJson(
        await timedLoop(a.num("count"), a.num("seconds"), async () => {
          await comm.handshake(peer);
        }),
      );
    },
    connectMany: async (a) => {
      peers = a.list("targets").map((t) => targetOf(t.str("endpoint"), t.str("pkiId", "")));
      await sync(comm, router, syncSeq++, peers);
      return peers.length;
    },
    fanout: async (a) => {
      const t0 = now();
      const count = await sendFor(peers, a.num("size"), a.num("seconds"), a.num("maxCount", 1e9));
      await sync(comm, router, syncSeq++, peers);
      const ms = now() - t0;
      return { count, deliveries: count * peers.length, ms };
    },
  };
}

// --- multi-peer roles ----------------------------------------------------------

export async function gossipReceivers(init: Init): Promise<WorkerSpec> {
  const n = init.opts.num("count");
  const servers = await pool(Array.from({ length: n }), 4, (_, i) => startServer(init, "sink", `gossip-receiver-${i}`));
  return {
    info: { targets: servers.map((s) => ({ endpoint: s.endpoint, pkiId: pkiIdHex(s.comm.pkiId) })) },
    handlers: { received: () => servers.reduce((k, s) => k + s.received, 0) },
  };
}

export async function gossipStorm(init: Init): Promise<WorkerSpec> {
  const n = init.opts.num("count");
  const comms = Array.from({ length: n }, (_, i) => lightComm(init, `gossip-storm-${process.pid}-${i}`, {}));
  return {
    info: { count: n },
    handlers: {
      storm: async (a) => {
        const peer = targetOf(a.str("endpoint"), a.str("pkiId", ""));
        await sleep(Math.max(0, a.num("at") - wallNow()));
        const start = wallNow();
        const lat = await Promise.all(
          comms.map(async (c) => {
            const t0 = now();
            await c.handshake(peer);
            return (now() - t0) * 1000;
          }),
        );
        return { latencies: lat, start, end: wallNow() };
      },
    },
  };
}

export async function gossipRemotes(init: Init): Promise<WorkerSpec> {
  const peers = new Map<number, { comm: Comm; router: ReplyRouter<number> }>();
  let stalled: number | undefined;
  let release: (() => void) | undefined;
  const gate = new Promise<void>((r) => (release = r));
  setTimeout(() => release?.(), 600_000).unref();
  return {
    info: { count: init.opts.num("count") },
    handlers: {
      connect: async (a) => {
        const hub = targetOf(a.str("endpoint"), a.str("pkiId", ""));
        const ack = new Set(a.nums("ack"));
        const indices = a.nums("indices");
        const ids = await pool(indices, 16, async (index): Promise<Json> => {
          const comm = lightComm(init, `gossip-remote-${index}`, {});
          const router = new ReplyRouter<number>();
          peers.set(index, { comm, router });
          void (async () => {
            for await (const m of comm.accept()) {
              if (stalled === index) await gate;
              if (m.message.content.case === "dataMsg") {
                if (ack.has(index)) void m.ack();
              } else {
                router.deliver(Number(m.message.nonce));
              }
            }
          })();
          await sync(comm, router, HELLO_BASE + index, [hub]);
          return { index, id: pkiIdHex(comm.pkiId) };
        });
        return ids;
      },
      stall: (a) => {
        stalled = a.num("index");
        return true;
      },
    },
  };
}
