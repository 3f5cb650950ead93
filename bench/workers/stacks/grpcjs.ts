/**
 * Stack (b): @grpc/grpc-js with Hyperledger's published bindings
 * (@hyperledger/fabric-protos: google-protobuf messages, GossipService and
 * GossipClient), used as an application would: GossipMessages built and
 * serialized with google-protobuf, wrapped in an Envelope per message, one
 * `call.write` per message with the stream's back-pressure
 * (`write() === false` → wait for 'drain'); the receiver deserializes every
 * GossipMessage. grpc-js options are its defaults (64 KiB HTTP/2 windows; the
 * server has no option to change them) apart from message size limits.
 */
import { createRequire } from "node:module";
import type * as grpcTypes from "@grpc/grpc-js";
import type * as fabricTypes from "@hyperledger/fabric-protos";
import type { Args, Init, Json, WorkerSpec } from "../common/ipc.js";
import {
  latencyJson,
  loadLoop,
  material,
  now,
  onceOrFail,
  payloadBytes,
  pool,
  ReplyRouter,
  sampleRss,
  sleep,
  timedLoop,
  wallNow,
  withTimeout,
} from "../common/util.js";
import { CHANNEL, HELLO_BASE, SYNC_BASE, TAG_CHAN_AND_ORG } from "../common/wire.js";

const require = createRequire(import.meta.url);
const grpc = require("@grpc/grpc-js") as typeof grpcTypes;
const fabric = require("@hyperledger/fabric-protos") as typeof fabricTypes;
const { gossip } = fabric;

type Envelope = fabricTypes.gossip.Envelope;
type GossipMessage = fabricTypes.gossip.GossipMessage;
type ServerCall = grpcTypes.ServerDuplexStream<Envelope, Envelope>;
type ClientCall = grpcTypes.ClientDuplexStream<Envelope, Envelope>;
type Call = ServerCall | ClientCall;
type Client = fabricTypes.gossip.GossipClient;

const Content = gossip.GossipMessage.ContentCase;
const limits = { "grpc.max_receive_message_length": 100 * 1024 * 1024, "grpc.max_send_message_length": 100 * 1024 * 1024 };
const callTimeoutMs = 20_000;

function dataMessage(seq: number, data: Uint8Array): GossipMessage {
  const payload = new gossip.Payload();
  payload.setSeqNum(seq);
  payload.setData(data);
  const dm = new gossip.DataMessage();
  dm.setPayload(payload);
  const gm = new gossip.GossipMessage();
  gm.setNonce(seq);
  gm.setChannel(CHANNEL);
  gm.setTag(TAG_CHAN_AND_ORG as fabricTypes.gossip.GossipMessage.TagMap[keyof fabricTypes.gossip.GossipMessage.TagMap]);
  gm.setDataMsg(dm);
  return gm;
}

function envelopeOf(gm: GossipMessage): Envelope {
  const env = new gossip.Envelope();
  env.setPayload(gm.serializeBinary());
  return env;
}

function controlEnvelope(nonce: number, content: "empty" | "ack"): Envelope {
  const gm = new gossip.GossipMessage();
  gm.setNonce(nonce);
  if (content === "empty") gm.setEmpty(new gossip.Empty());
  else gm.setAck(new gossip.Acknowledgement());
  return envelopeOf(gm);
}

function parse(env: Envelope): GossipMessage {
  return gossip.GossipMessage.deserializeBinary(env.getPayload_asU8());
}

// --- server ------------------------------------------------------------------

interface GrpcServer {
  endpoint: string;
  received: number;
}

async function startServer(
  init: Init,
  mode: string,
  hub?: { calls: Map<number, ServerCall>; acks: ReplyRouter<number> },
): Promise<GrpcServer> {
  const server = new grpc.Server(limits);
  const state: GrpcServer = { endpoint: "", received: 0 };
  server.addService(gossip.GossipService, {
    ping: (_call: unknown, cb: grpcTypes.sendUnaryData<fabricTypes.gossip.Empty>) => cb(null, new gossip.Empty()),
    gossipStream: (call: ServerCall) => {
      call.on("error", () => {});
      call.on("data", (env: Envelope) => {
        const gm = parse(env);
        switch (gm.getContentCase()) {
          case Content.DATA_MSG:
            state.received++;
            if (mode === "echo") call.write(envelopeOf(gm));
            break;
          case Content.EMPTY: {
            const nonce = gm.getNonce();
            if (hub && nonce >= HELLO_BASE) hub.calls.set(nonce - HELLO_BASE, call);
            call.write(env);
            break;
          }
          case Content.ACK:
            hub?.acks.deliver(gm.getNonce());
            break;
          default:
            break;
        }
      });
      call.on("end", () => call.end());
    },
  });
  let creds: grpcTypes.ServerCredentials;
  if (init.tls) {
    const m = material(init, "grpc-server");
    creds = grpc.ServerCredentials.createSsl(
      Buffer.from(init.ca.certPem),
      [{ cert_chain: Buffer.from(m.tlsServer.certPem), private_key: Buffer.from(m.tlsServer.keyPem) }],
      true,
    );
  } else {
    creds = grpc.ServerCredentials.createInsecure();
  }
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", creds, (err, p) => (err ? reject(err) : resolve(p))),
  );
  state.endpoint = `127.0.0.1:${port}`;
  return state;
}

export async function grpcServer(init: Init): Promise<WorkerSpec> {
  const mode = init.opts.str("mode", "sink");
  const hub = { calls: new Map<number, ServerCall>(), acks: new ReplyRouter<number>() };
  const s = await startServer(init, mode, hub);
  const data = payloadBytes(init.opts.num("hubSize", 1024));
  let seq = 1;
  return {
    info: { endpoint: s.endpoint, pkiId: "" },
    handlers: {
      received: () => s.received,
      waitConns: async (a) => {
        const n = a.num("n");
        const end = now() + a.num("seconds", 60) * 1000;
        while (hub.calls.size < n && now() < end) await sleep(20);
        return hub.calls.size;
      },
      ackRound: async (a) => {
        const calls = a.strs("ids").map((id) => {
          const c = hub.calls.get(Number(id));
          if (!c) throw new Error(`no stream from remote ${id}`);
          return c;
        });
        const lat = await timedLoop(a.num("count"), a.num("seconds"), async () => {
          const nonce = seq++;
          const acked = hub.acks.expect(nonce, calls.length);
          const env = envelopeOf(dataMessage(nonce, data));
          for (const c of calls) c.write(env);
          await withTimeout(acked, 5000, "acks");
        });
        return latencyJson(lat);
      },
      stall: async (a) => {
        const call = hub.calls.get(Number(a.str("id")));
        if (!call) throw new Error("no stalled stream");
        const batch = a.num("batch");
        let sent = 0;
        let dropped = 0;
        const samples = await sampleRss(
          a.num("seconds"),
          a.num("sampleMs", 1000),
          () => {
            for (let i = 0; i < batch; i++) {
              // The application produces the message either way; a bounded send
              // buffer (20 messages) drops it when full, as gossip does.
              const env = envelopeOf(dataMessage(seq++, data));
              if (call.destroyed || call.writableLength >= 20) dropped++;
              else {
                call.write(env);
                sent++;
              }
            }
          },
          a.num("tickMs", 10),
        );
        return { samples, sent, dropped };
      },
    },
  };
}

// --- client ------------------------------------------------------------------

function credentials(init: Init, name: string): grpcTypes.ChannelCredentials {
  if (!init.tls) return grpc.credentials.createInsecure();
  const m = material(init, name);
  return grpc.credentials.createSsl(Buffer.from(init.ca.certPem), Buffer.from(m.tlsClient.keyPem), Buffer.from(m.tlsClient.certPem));
}

/** A client with its own connection (grpc-js would otherwise share one subchannel per target). */
function newClient(endpoint: string, creds: grpcTypes.ChannelCredentials): Client {
  return new gossip.GossipClient(endpoint, creds, { ...limits, "grpc.use_local_subchannel_pool": 1 });
}

class GrpcConn {
  readonly router = new ReplyRouter<number>();
  readonly call: ClientCall;

  constructor(
    readonly client: Client,
    onData?: (conn: GrpcConn, gm: GossipMessage) => void,
  ) {
    this.call = client.gossipStream();
    this.call.on("error", () => {});
    this.call.on("data", (env: Envelope) => {
      const gm = parse(env);
      if (onData && gm.getContentCase() !== Content.EMPTY) onData(this, gm);
      else this.router.deliver(gm.getNonce());
    });
  }

  async roundTrip(nonce: number): Promise<void> {
    const reply = this.router.expect(nonce);
    this.call.write(controlEnvelope(nonce, "empty"));
    await withTimeout(reply, callTimeoutMs, "round trip");
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }
}

function ping(client: Client): Promise<void> {
  return new Promise((resolve, reject) =>
    client.ping(new gossip.Empty(), { deadline: Date.now() + callTimeoutMs }, (err) => (err ? reject(err) : resolve())),
  );
}

async function pump(calls: readonly Call[], a: Args, seqRef: { seq: number }): Promise<number> {
  const data = payloadBytes(a.num("size"));
  const end = now() + a.num("seconds") * 1000;
  const maxCount = a.num("maxCount", 1e9);
  let count = 0;
  const waits: Promise<void>[] = [];
  for (;;) {
    const env = envelopeOf(dataMessage(seqRef.seq++, data));
    for (const c of calls) if (!c.write(env)) waits.push(onceOrFail(c, "drain"));
    if (waits.length > 0) {
      await Promise.all(waits);
      waits.length = 0;
    }
    count++;
    if ((count & 31) === 0 && (count >= maxCount || now() >= end)) break;
  }
  return count;
}

export async function grpcClient(init: Init): Promise<WorkerSpec> {
  const creds = credentials(init, "grpc-client");
  let conn: GrpcConn | undefined;
  let many: GrpcConn[] = [];
  let pinger: Client | undefined;
  const seqRef = { seq: 1 };
  let syncSeq = SYNC_BASE;
  const need = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`${what}: not connected`);
    return v;
  };
  return {
    info: { pid: process.pid },
    handlers: {
      connect: async (a) => {
        conn = new GrpcConn(new gossip.GossipClient(a.str("endpoint"), creds, limits));
        await conn.roundTrip(syncSeq++);
        return true;
      },
      stream: async (a) => {
        const c = need(conn, "stream");
        const cpu0 = process.cpuUsage();
        const t0 = now();
        const count = await pump([c.call], a, seqRef);
        await c.roundTrip(syncSeq++);
        const ms = now() - t0;
        const cpu = process.cpuUsage(cpu0);
        return { count, ms, cpuUs: cpu.user + cpu.system };
      },
      echo: async (a) => {
        const c = need(conn, "echo");
        const data = payloadBytes(a.num("size"));
        const lat = await timedLoop(a.num("count"), a.num("seconds"), async () => {
          const nonce = seqRef.seq++;
          const reply = c.router.expect(nonce);
          c.call.write(envelopeOf(dataMessage(nonce, data)));
          await withTimeout(reply, callTimeoutMs, "echo");
        });
        return latencyJson(lat);
      },
      pingConnect: async (a) => {
        pinger = new gossip.GossipClient(a.str("endpoint"), creds, limits);
        await ping(pinger);
        return true;
      },
      ping: async (a) => {
        const p = need(pinger, "ping");
        return latencyJson(await timedLoop(a.num("count"), a.num("seconds"), () => ping(p)));
      },
      pingLoad: async (a) => {
        const p = need(pinger, "pingLoad");
        return loadLoop(a.num("inflight"), a.num("seconds"), a.num("maxCount", 1e9), () => ping(p));
      },
      probe: async (a) => {
        const endpoint = a.str("endpoint");
        const lat = await timedLoop(a.num("count"), a.num("seconds"), async () => {
          const c = newClient(endpoint, creds);
          try {
            await ping(c);
          } finally {
            c.close();
          }
        });
        return latencyJson(lat);
      },
      setup: async (a) => {
        const endpoint = a.str("endpoint");
        const lat = await timedLoop(a.num("count"), a.num("seconds"), async () => {
          const c = new GrpcConn(newClient(endpoint, creds));
          try {
            await c.roundTrip(syncSeq++);
          } finally {
            c.close();
          }
        });
        return latencyJson(lat);
      },
      connectMany: async (a) => {
        const endpoints = a.list("targets").map((t) => t.str("endpoint"));
        many = endpoints.map((e) => new GrpcConn(newClient(e, creds)));
        await Promise.all(many.map((c) => c.roundTrip(syncSeq++)));
        return many.length;
      },
      fanout: async (a) => {
        const t0 = now();
        const count = await pump(
          many.map((c) => c.call),
          a,
          seqRef,
        );
        await Promise.all(many.map((c) => c.roundTrip(syncSeq++)));
        const ms = now() - t0;
        return { count, deliveries: count * many.length, ms };
      },
    },
  };
}

// --- multi-peer roles ----------------------------------------------------------

export async function grpcReceivers(init: Init): Promise<WorkerSpec> {
  const servers = await pool(Array.from({ length: init.opts.num("count") }), 8, () => startServer(init, "sink"));
  return {
    info: { targets: servers.map((s) => ({ endpoint: s.endpoint, pkiId: "" })) },
    handlers: { received: () => servers.reduce((n, s) => n + s.received, 0) },
  };
}

export async function grpcStorm(init: Init): Promise<WorkerSpec> {
  const count = init.opts.num("count");
  const creds = Array.from({ length: count }, (_, i) => credentials(init, `grpc-storm-${i}`));
  let syncSeq = SYNC_BASE;
  return {
    info: { count },
    handlers: {
      storm: async (a) => {
        const endpoint = a.str("endpoint");
        await sleep(Math.max(0, a.num("at") - wallNow()));
        const start = wallNow();
        const lat = await Promise.all(
          creds.map(async (cr) => {
            const t0 = now();
            const c = new GrpcConn(newClient(endpoint, cr));
            await c.roundTrip(syncSeq++);
            const us = (now() - t0) * 1000;
            c.close();
            return us;
          }),
        );
        return { latencies: lat, start, end: wallNow() };
      },
    },
  };
}

export async function grpcRemotes(init: Init): Promise<WorkerSpec> {
  const creds = credentials(init, "grpc-remote");
  const conns = new Map<number, GrpcConn>();
  return {
    info: { count: init.opts.num("count") },
    handlers: {
      connect: async (a) => {
        const endpoint = a.str("endpoint");
        const ack = new Set(a.nums("ack"));
        const indices = a.nums("indices");
        await pool(indices, 16, async (index) => {
          const c = new GrpcConn(newClient(endpoint, creds), (conn, gm) => {
            if (gm.getContentCase() === Content.DATA_MSG && ack.has(index)) conn.call.write(controlEnvelope(gm.getNonce(), "ack"));
          });
          conns.set(index, c);
          await c.roundTrip(HELLO_BASE + index);
        });
        return indices.map((i): Json => ({ index: i, id: String(i) }));
      },
      stall: (a) => {
        const c = conns.get(a.num("index"));
        if (!c) throw new Error("no such remote");
        c.call.pause();
        return true;
      },
    },
  };
}
