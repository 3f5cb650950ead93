/**
 * Stack (a) "raw" and the W3 reference "rawpb": node:http2 with gRPC framing
 * written by hand, the same Gossip paths and messages as the other stacks.
 *
 * - raw: messages hand-encoded straight into 64 KiB buffers, one HTTP/2
 *   write per buffer (coalesced); the receiver only splits frames (and peeks
 *   at control messages). This is the practical limit of Node's HTTP/2.
 * - rawpb: protobuf-es (`create` + `toBinary`, `fromBinary` on receipt, as an
 *   application would) and one HTTP/2 write per message.
 * - rawhs (W7's floor, a+hs): raw, plus Fabric's signed handshake on every
 *   GossipStream (raw-handshake.ts); server (hub) and remotes only.
 * - rawg (W4's floor, a+g): raw's Ping server, and a client whose Pings
 *   are complete gRPC calls (`grpcPing`: deadline kept, answer checked).
 *
 * Both use 1 MiB HTTP/2 stream and connection windows, as gossip-connect does.
 */
import type { EventEmitter } from "node:events";
import * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { EnvelopeSchema, type GossipMessage, GossipMessageSchema } from "../../../src/gen/gossip/message_pb.js";
import type { Args, Init, Json, WorkerSpec } from "../common/ipc.js";
import { pbDataMessage } from "../common/pb.js";
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
import {
  COALESCE_BYTES,
  CONTENT_ACK,
  CONTENT_DATA,
  CONTENT_EMPTY,
  CONTROL_FRAME_MAX,
  controlFrame,
  dataFrame,
  dataFrameSize,
  EMPTY_FRAME,
  FrameReader,
  frame,
  HELLO_BASE,
  peek,
  SYNC_BASE,
  writeDataFrame,
} from "../common/wire.js";
import { AuthenticatedPeers, FabricHandshaker } from "./raw-handshake.js";

const GOSSIP_PATH = "/gossip.Gossip/GossipStream";
const PING_PATH = "/gossip.Gossip/Ping";
const WINDOW = 1024 * 1024;
/** The HTTP/2 settings of every raw session, server and client (1 MiB windows, as gossip-connect's). */
export const rawSettings: http2.Settings = { initialWindowSize: WINDOW, maxConcurrentStreams: 1000, enablePush: false };
const callTimeoutMs = 20_000;

/** How a raw stack encodes and decodes messages. */
interface Codec {
  /** Nonce and content of an incoming Envelope (rawpb decodes it completely, raw only peeks). */
  read(message: Buffer): { nonce: number; content: number };
  /** The answer to an echoed data message. */
  echo(message: Buffer): Buffer;
  /** One data message, framed. */
  data(seq: number, bytes: Uint8Array): Buffer;
}

const handCodec: Codec = {
  read: (message) => peek(message),
  echo: (message) => frame(message),
  data: (seq, bytes) => dataFrame(seq, bytes),
};

function pbFrame(gm: GossipMessage): Buffer {
  return frame(toBinary(EnvelopeSchema, create(EnvelopeSchema, { payload: toBinary(GossipMessageSchema, gm) })));
}

function pbDecode(message: Buffer): GossipMessage {
  return fromBinary(GossipMessageSchema, fromBinary(EnvelopeSchema, message).payload);
}

const pbCodec: Codec = {
  read(message) {
    const gm = pbDecode(message);
    const c = gm.content.case;
    return {
      nonce: Number(gm.nonce),
      content: c === "dataMsg" ? CONTENT_DATA : c === "empty" ? CONTENT_EMPTY : c === "ack" ? CONTENT_ACK : 0,
    };
  },
  echo: (message) => pbFrame(pbDecode(message)),
  data: (seq, bytes) => pbFrame(pbDataMessage(seq, bytes)),
};

function codecOf(init: Init): Codec {
  return init.stack === "rawpb" ? pbCodec : handCodec;
}

function drain(stream: EventEmitter): Promise<void> {
  return onceOrFail(stream, "drain");
}

// --- server ------------------------------------------------------------------

interface RawServer {
  readonly server: http2.Http2Server | http2.Http2SecureServer;
  endpoint: string;
  received: number;
  /** W8: where a relay writes every message on (set by its `relayTo` call). */
  relay?: RawRelay;
  /** rawhs: what each connection keeps of Fabric's handshake. */
  readonly peers: AuthenticatedPeers;
}

function flushRelay(relay: RawRelay): void {
  relay.flush();
}

/**
 * W8's relay B on stack a: every message received is copied, framed exactly
 * as it arrived (the same gRPC-framed bytes), into 64 KiB buffers written to
 * C on one stream, the way stack a's sender coalesces W1. A buffer goes out
 * when it is full or at the end of the event loop's turn (setImmediate), so
 * that what one turn's reads brought leaves in as few writes as possible.
 * While C's stream is full, the streams it relays from are paused, so that
 * HTTP/2 flow control pushes back on A.
 */
class RawRelay {
  private buf = Buffer.allocUnsafe(COALESCE_BYTES);
  private at = 0;
  private scheduled = false;
  private readonly sources = new Set<http2.ServerHttp2Stream>();
  private paused = false;

  constructor(readonly conn: RawConn) {
    conn.stream.on("drain", () => {
      this.paused = false;
      for (const s of this.sources) if (!s.destroyed) s.resume();
    });
  }

  /** Writes `message` (a gRPC message without its 5-byte header) on to C. */
  forward(message: Buffer, from: http2.ServerHttp2Stream): void {
    this.sources.add(from);
    const size = 5 + message.length;
    if (this.at + size > COALESCE_BYTES) this.flush();
    if (size > COALESCE_BYTES) {
      this.write(frame(message));
      return;
    }
    const buf = this.buf;
    buf[this.at] = 0;
    buf.writeUInt32BE(message.length, this.at + 1);
    message.copy(buf, this.at + 5);
    this.at += size;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(flushRelay, this);
    }
  }

  /**
   * A sync from A: forwarded in order behind the data before it, and
   * answered to A once C answered it, so that A's run ends only when
   * everything reached C.
   */
  sync(message: Buffer, nonce: number, from: http2.ServerHttp2Stream): void {
    const answer = frame(message);
    void this.conn.router.expect(nonce).then(() => {
      if (!from.destroyed) from.write(answer);
    });
    this.forward(message, from);
  }

  flush(): void {
    this.scheduled = false;
    if (this.at === 0) return;
    const chunk = this.buf.subarray(0, this.at);
    this.buf = Buffer.allocUnsafe(COALESCE_BYTES);
    this.at = 0;
    this.write(chunk);
  }

  private write(chunk: Buffer): void {
    if (this.conn.stream.write(chunk) || this.paused) return;
    this.paused = true;
    for (const s of this.sources) s.pause();
  }
}

/**
 * A raw Gossip server. Modes: `sink` counts data messages, `echo` answers
 * each, `hub` (W7) also records hello'd streams and routes acks, `relay` (W8)
 * writes every message on to the peer given by `relayTo` (see RawRelay).
 * Every mode answers sync messages (a relay once its target answered them)
 * and Ping.
 */
async function startServer(
  init: Init,
  mode: string,
  hub?: { streams: Map<number, http2.ServerHttp2Stream>; acks: ReplyRouter<number> },
): Promise<RawServer> {
  const codec = codecOf(init);
  const pb = init.stack === "rawpb";
  const m = init.tls ? material(init, "raw-server") : undefined;
  const server = m
    ? http2.createSecureServer({
        key: m.tlsServer.keyPem,
        cert: m.tlsServer.certPem,
        ca: [init.ca.certPem],
        requestCert: true,
        rejectUnauthorized: true,
        settings: rawSettings,
      })
    : http2.createServer({ settings: rawSettings });
  const state: RawServer = { server, endpoint: "", received: 0, peers: new AuthenticatedPeers() };
  // Without TLS (--h2c) the handshake still runs, without certificate hashes.
  const handshaker = init.stack === "rawhs" ? new FabricHandshaker(init.ca.certPem, m ?? material(init, "raw-server")) : undefined;
  server.on("session", (s: http2.ServerHttp2Session) => {
    s.on("error", () => {});
    try {
      s.setLocalWindowSize(WINDOW);
    } catch {
      // not yet connected: the settings frame still carries the stream window
    }
  });
  server.on("sessionError", () => {});
  server.on("stream", (stream, headers) => {
    stream.on("error", () => {});
    const path = headers[":path"];
    if (path === PING_PATH) {
      answerPing(stream);
      return;
    }
    if (path !== GOSSIP_PATH) {
      stream.respond({ ":status": 404 });
      stream.end();
      return;
    }
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    if (handshaker === undefined) {
      serveGossip(stream, undefined);
      return;
    }
    // rawhs: Fabric's handshake first, then the raw stream as stack a reads it.
    handshaker.run(stream, stream.session as http2.ServerHttp2Session).then(
      ({ auth, rest }) => {
        state.peers.add(auth);
        serveGossip(stream, rest);
      },
      () => stream.close(http2.constants.NGHTTP2_CANCEL),
    );
  });
  /** Reads a GossipStream on (from `rest`, bytes already read, if any). */
  const serveGossip = (stream: http2.ServerHttp2Stream, rest: Buffer | undefined): void => {
    const out: Buffer[] = [];
    const reader = new FrameReader((message) => {
      if (!pb && message.length >= CONTROL_FRAME_MAX) {
        // raw: a data message; only counted (or echoed, or relayed).
        state.received++;
        if (mode === "echo") out.push(frame(message));
        else state.relay?.forward(message, stream);
        return;
      }
      const { nonce, content } = codec.read(message);
      if (content === CONTENT_EMPTY && state.relay !== undefined) {
        state.relay.sync(message, nonce, stream);
      } else if (content === CONTENT_DATA) {
        state.received++;
        if (mode === "echo") out.push(codec.echo(message));
      } else if (content === CONTENT_EMPTY) {
        if (hub && nonce >= HELLO_BASE) hub.streams.set(nonce - HELLO_BASE, stream);
        out.push(frame(message));
      } else if (content === CONTENT_ACK) {
        hub?.acks.deliver(nonce);
      }
    });
    const onData = (chunk: Buffer) => {
      reader.push(chunk);
      if (out.length === 0) return;
      if (pb) {
        // rawpb: one write per message.
        for (const b of out) stream.write(b);
      } else {
        stream.write(out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out));
      }
      out.length = 0;
    };
    stream.on("data", onData);
    stream.on("end", () => {
      if (!stream.destroyed) stream.end();
    });
    if (rest !== undefined) onData(rest);
  };
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const addr = server.address();
  if (addr === null || typeof addr === "string") throw new Error("no address");
  state.endpoint = `127.0.0.1:${addr.port}`;
  return state;
}

/** The bare server's answer to a Ping (W4's stack a): the request is read to its end, then one empty message and status 0. */
export function answerPing(stream: http2.ServerHttp2Stream): void {
  stream.on("data", () => {});
  stream.on("end", () => {
    if (stream.destroyed) return;
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    stream.end(EMPTY_FRAME);
  });
}

/** A bare Ping server's stream handler (the bench tools'): Ping answered as stack a does, any other path 404. */
export function onBarePingStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
  stream.on("error", () => {});
  if (headers[":path"] !== PING_PATH) {
    stream.respond({ ":status": 404 });
    stream.end();
    return;
  }
  answerPing(stream);
}

export async function rawServer(init: Init): Promise<WorkerSpec> {
  const mode = init.opts.str("mode", "sink");
  const hub = { streams: new Map<number, http2.ServerHttp2Stream>(), acks: new ReplyRouter<number>() };
  const s = await startServer(init, mode, hub);
  const data = payloadBytes(init.opts.num("hubSize", 1024));
  let seq = 1;
  return {
    info: { endpoint: s.endpoint, pkiId: "" },
    handlers: {
      received: () => s.received,
      relayTo: async (a) => {
        // Connect first (one sync answered by the target), then relay.
        const conn = await RawConn.open(init, a.str("endpoint"), clientCertOf(init, "raw-relay"));
        await conn.roundTrip(SYNC_BASE - 1);
        s.relay = new RawRelay(conn);
        return true;
      },
      waitConns: async (a) => {
        const n = a.num("n");
        const end = now() + a.num("seconds", 60) * 1000;
        while (hub.streams.size < n && now() < end) await sleep(20);
        return hub.streams.size;
      },
      ackRound: async (a) => {
        const ids = a.strs("ids").map(Number);
        const streams = ids.map((i) => {
          const st = hub.streams.get(i);
          if (!st) throw new Error(`no stream from remote ${i}`);
          return st;
        });
        const lat = await timedLoop(a.num("count"), a.num("seconds"), async () => {
          const nonce = seq++;
          const acked = hub.acks.expect(nonce, streams.length);
          const f = dataFrame(nonce, data);
          for (const st of streams) st.write(f);
          await withTimeout(acked, 5000, "acks");
        });
        return latencyJson(lat);
      },
      stall: async (a) => {
        const st = hub.streams.get(Number(a.str("id")));
        if (!st) throw new Error("no stalled stream");
        const batch = a.num("batch");
        const limit = 20 * dataFrameSize(seq, data.length);
        let sent = 0;
        let dropped = 0;
        const samples = await sampleRss(
          a.num("seconds"),
          a.num("sampleMs", 1000),
          () => {
            for (let i = 0; i < batch; i++) {
              // The application produces the message either way; a bounded send
              // buffer (20 messages) drops it when full, as gossip does.
              const f = dataFrame(seq++, data);
              if (st.destroyed || st.writableLength > limit) dropped++;
              else {
                st.write(f);
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

/** One raw HTTP/2 connection with one Gossip stream; replies are routed by nonce. */
class RawConn {
  readonly router = new ReplyRouter<number>();
  private constructor(
    readonly session: http2.ClientHttp2Session,
    readonly stream: http2.ClientHttp2Stream,
  ) {}

  static async session(
    init: Init,
    endpoint: string,
    clientCert: { cert: string; key: string } | undefined,
  ): Promise<http2.ClientHttp2Session> {
    const session = clientCert
      ? http2.connect(`https://${endpoint}`, { ca: init.ca.certPem, cert: clientCert.cert, key: clientCert.key, settings: rawSettings })
      : http2.connect(`http://${endpoint}`, { settings: rawSettings });
    session.on("error", () => {});
    await withTimeout(onceOrFail(session, "connect"), callTimeoutMs, `connect ${endpoint}`);
    session.setLocalWindowSize(WINDOW);
    return session;
  }

  /**
   * With `handshaker` (rawhs), the connection is made as Fabric's
   * createConnection makes it: a Ping first, then the GossipStream, which
   * runs Fabric's handshake before it is returned.
   */
  static async open(
    init: Init,
    endpoint: string,
    clientCert: { cert: string; key: string } | undefined,
    onData?: (conn: RawConn, nonce: number, content: number) => void,
    handshaker?: FabricHandshaker,
  ): Promise<RawConn> {
    const session = await RawConn.session(init, endpoint, clientCert);
    if (handshaker) await withTimeout(ping(session), callTimeoutMs, `ping ${endpoint}`);
    const stream = session.request({ ":method": "POST", ":path": GOSSIP_PATH, "content-type": "application/grpc", te: "trailers" });
    stream.on("error", () => {});
    const conn = new RawConn(session, stream);
    const codec = codecOf(init);
    let rest: Buffer | undefined;
    if (handshaker) {
      try {
        rest = (await handshaker.run(stream, session)).rest;
      } catch (e) {
        session.destroy();
        throw e;
      }
    }
    const reader = new FrameReader((message) => {
      const { nonce, content } = codec.read(message);
      if (onData && content !== CONTENT_EMPTY) onData(conn, nonce, content);
      else conn.router.deliver(nonce);
    });
    stream.on("data", (chunk: Buffer) => reader.push(chunk));
    if (rest !== undefined) reader.push(rest);
    return conn;
  }

  /** Sends a control message and waits for its echo. */
  async roundTrip(nonce: number): Promise<void> {
    const reply = this.router.expect(nonce);
    this.stream.write(controlFrame(nonce, CONTENT_EMPTY));
    await withTimeout(reply, callTimeoutMs, "round trip");
  }

  close(): void {
    this.session.destroy();
  }
}

/** One gRPC Ping on `session`, as the raw stack sends it (also `bench/tools/ping-cost.ts`'s bare client). */
export function ping(session: http2.ClientHttp2Session): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ":method": "POST", ":path": PING_PATH, "content-type": "application/grpc", te: "trailers" });
    let ok = false;
    req.on("trailers", (t) => {
      ok = t["grpc-status"] === "0";
    });
    req.on("data", () => {});
    req.on("error", reject);
    req.on("close", () => (ok ? resolve() : reject(new Error("ping failed"))));
    req.end(EMPTY_FRAME);
  });
}

/**
 * One gRPC Ping on `session` as a complete gRPC client must make it, and
 * nothing more: W4's floor, a reference gRPC Ping client (bench/README.md,
 * W4). Beyond {@link ping}, it sends the deadline (`grpc-timeout`) and keeps
 * it (a timer that resets the stream with CANCEL), and it checks the answer:
 * HTTP 200, a gRPC content type, at most one uncompressed, whole message
 * within 4 MiB (the 5-byte frame headers of the DATA it reads; the messages
 * themselves are skipped), and grpc-status 0 from the trailers or from a
 * trailers-only response. What a library adds on top (connection
 * management, typed errors, abort signals) is not in it. It is written
 * plainly (closures per call), not tuned: a reference, not a lower bound.
 */
export function grpcPing(session: http2.ClientHttp2Session, timeoutMs = 15_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ":method": "POST",
      ":path": PING_PATH,
      "content-type": "application/grpc",
      te: "trailers",
      "grpc-timeout": `${timeoutMs}m`,
    });
    let status: string | undefined;
    let bad = false;
    let frames = 0;
    let head = 0; // bytes of the next frame's 5-byte header read so far
    let length = 0; // its length, from header bytes 1-4
    let skip = 0; // bytes of the current frame's message still to come
    const timer = setTimeout(() => {
      bad = true;
      req.close(http2.constants.NGHTTP2_CANCEL);
    }, timeoutMs);
    req.on("response", (h) => {
      const type = h["content-type"];
      if (h[":status"] !== 200 || typeof type !== "string" || !type.startsWith("application/grpc")) bad = true;
      if (h["grpc-status"] !== undefined) status = h["grpc-status"] as string;
    });
    req.on("trailers", (t) => {
      status = t["grpc-status"] as string | undefined;
    });
    req.on("data", (chunk: Buffer) => {
      // The frames' headers are read byte by byte (a header may be split
      // across DATA frames); their messages are skipped.
      let i = 0;
      while (i < chunk.length && !bad) {
        if (skip > 0) {
          const n = Math.min(skip, chunk.length - i);
          skip -= n;
          i += n;
          continue;
        }
        const b = chunk[i++] as number;
        if (head === 0) {
          if (b !== 0) bad = true; // compressed, and no encoding was announced
          length = 0;
        } else {
          length = length * 256 + b;
        }
        if (++head === 5) {
          head = 0;
          if (length > 4 * 1024 * 1024 || ++frames > 1) bad = true;
          skip = length;
        }
      }
    });
    req.on("error", () => {
      bad = true;
    });
    req.on("close", () => {
      clearTimeout(timer);
      if (!bad && status === "0" && head === 0 && skip === 0) resolve();
      else reject(new Error("ping failed"));
    });
    req.end(EMPTY_FRAME);
  });
}

/** The client certificate of this process (one per process for the raw and grpc-js stacks). */
function clientCertOf(init: Init, name: string): { cert: string; key: string } | undefined {
  if (!init.tls) return undefined;
  const m = material(init, name);
  return { cert: m.tlsClient.certPem, key: m.tlsClient.keyPem };
}

/** Writes data messages to `streams` for `seconds`; coalesced (raw) or one write per message (rawpb). */
async function pump(init: Init, streams: readonly http2.ClientHttp2Stream[], a: Args, seqRef: { seq: number }): Promise<number> {
  const data = payloadBytes(a.num("size"));
  const end = now() + a.num("seconds") * 1000;
  const maxCount = a.num("maxCount", 1e9);
  let count = 0;
  const waits: Promise<void>[] = [];
  const writeAll = async (buf: Buffer) => {
    for (const st of streams) if (!st.write(buf)) waits.push(drain(st));
    if (waits.length > 0) {
      await Promise.all(waits);
      waits.length = 0;
    }
  };
  if (init.stack === "rawpb") {
    for (;;) {
      await writeAll(pbCodec.data(seqRef.seq++, data));
      count++;
      if ((count & 31) === 0 && (count >= maxCount || now() >= end)) break;
    }
    return count;
  }
  let buf = Buffer.allocUnsafe(COALESCE_BYTES);
  let at = 0;
  for (;;) {
    const size = dataFrameSize(seqRef.seq, data.length);
    if (at + size > COALESCE_BYTES && at > 0) {
      await writeAll(buf.subarray(0, at));
      buf = Buffer.allocUnsafe(COALESCE_BYTES);
      at = 0;
      if (count >= maxCount || now() >= end) break;
    }
    if (size > COALESCE_BYTES) {
      await writeAll(dataFrame(seqRef.seq++, data));
    } else {
      at = writeDataFrame(buf, at, seqRef.seq++, data);
    }
    count++;
  }
  return count;
}

export async function rawClient(init: Init): Promise<WorkerSpec> {
  const cert = clientCertOf(init, "raw-client");
  let conn: RawConn | undefined;
  let many: RawConn[] = [];
  let pinger: http2.ClientHttp2Session | undefined;
  const seqRef = { seq: 1 };
  let syncSeq = SYNC_BASE;
  const codec = codecOf(init);
  // rawg (W4's floor, a+g): the same session, each Ping made as a complete gRPC client makes it.
  const pingOn = init.stack === "rawg" ? grpcPing : ping;
  const need = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`${what}: not connected`);
    return v;
  };
  return {
    info: { pid: process.pid },
    handlers: {
      connect: async (a) => {
        conn = await RawConn.open(init, a.str("endpoint"), cert);
        await conn.roundTrip(syncSeq++);
        return true;
      },
      stream: async (a) => {
        const c = need(conn, "stream");
        const cpu0 = process.cpuUsage();
        const t0 = now();
        const count = await pump(init, [c.stream], a, seqRef);
        await c.roundTrip(syncSeq++);
        const ms = now() - t0;
        const cpu = process.cpuUsage(cpu0);
        return { count, ms, cpuUs: cpu.user + cpu.system, bytesPerMsg: dataFrameSize(seqRef.seq, a.num("size")) };
      },
      echo: async (a) => {
        const c = need(conn, "echo");
        const data = payloadBytes(a.num("size"));
        const lat = await timedLoop(a.num("count"), a.num("seconds"), async () => {
          const nonce = seqRef.seq++;
          const reply = c.router.expect(nonce);
          c.stream.write(codec.data(nonce, data));
          await withTimeout(reply, callTimeoutMs, "echo");
        });
        return latencyJson(lat);
      },
      pingConnect: async (a) => {
        pinger = await RawConn.session(init, a.str("endpoint"), cert);
        await pingOn(pinger);
        return true;
      },
      ping: async (a) => {
        const s = need(pinger, "ping");
        return latencyJson(await timedLoop(a.num("count"), a.num("seconds"), () => pingOn(s)));
      },
      pingLoad: async (a) => {
        const s = need(pinger, "pingLoad");
        return loadLoop(a.num("inflight"), a.num("seconds"), a.num("maxCount", 1e9), () => pingOn(s));
      },
      probe: async (a) => {
        const endpoint = a.str("endpoint");
        const lat = await timedLoop(a.num("count"), a.num("seconds"), async () => {
          const s = await RawConn.session(init, endpoint, cert);
          try {
            await pingOn(s);
          } finally {
            s.destroy();
          }
        });
        return latencyJson(lat);
      },
      setup: async (a) => {
        const endpoint = a.str("endpoint");
        const lat = await timedLoop(a.num("count"), a.num("seconds"), async () => {
          const c = await RawConn.open(init, endpoint, cert);
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
        many = await pool(endpoints, 16, (e) => RawConn.open(init, e, cert));
        await Promise.all(many.map((c) => c.roundTrip(syncSeq++)));
        return many.length;
      },
      fanout: async (a) => {
        const t0 = now();
        const count = await pump(
          init,
          many.map((c) => c.stream),
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

/** W5: `count` raw servers in this process, each counting what it receives. */
export async function rawReceivers(init: Init): Promise<WorkerSpec> {
  const servers = await pool(Array.from({ length: init.opts.num("count") }), 8, () => startServer(init, "sink"));
  return {
    info: { targets: servers.map((s) => ({ endpoint: s.endpoint, pkiId: "" })) },
    handlers: { received: () => servers.reduce((n, s) => n + s.received, 0) },
  };
}

/** W6: `count` dialers that connect at once (TLS + one bidi round trip). */
export async function rawStorm(init: Init): Promise<WorkerSpec> {
  const count = init.opts.num("count");
  const certs = Array.from({ length: count }, (_, i) => clientCertOf(init, `raw-storm-${i}`));
  let syncSeq = SYNC_BASE;
  return {
    info: { count },
    handlers: {
      storm: async (a) => {
        const endpoint = a.str("endpoint");
        const at = a.num("at");
        await sleep(Math.max(0, at - wallNow()));
        const start = wallNow();
        const lat = await Promise.all(
          certs.map(async (cert) => {
            const t0 = now();
            const c = await RawConn.open(init, endpoint, cert);
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

/**
 * W7: `count` remote peers holding one idle stream each to the hub; some ack,
 * one can stall. rawhs: each remote has its own identity and TLS certificate
 * (as gossip-connect's remotes) and runs Fabric's handshake first.
 */
export async function rawRemotes(init: Init): Promise<WorkerSpec> {
  const shared = init.stack === "rawhs" ? undefined : clientCertOf(init, "raw-remote");
  const conns = new Map<number, RawConn>();
  return {
    info: { count: init.opts.num("count") },
    handlers: {
      connect: async (a) => {
        const endpoint = a.str("endpoint");
        const ack = new Set(a.nums("ack"));
        const indices = a.nums("indices");
        await pool(indices, 16, async (index) => {
          const m = init.stack === "rawhs" ? material(init, `rawhs-remote-${index}`) : undefined;
          const cert = m && init.tls ? { cert: m.tlsClient.certPem, key: m.tlsClient.keyPem } : shared;
          const onData = (conn: RawConn, nonce: number, content: number) => {
            if (content === CONTENT_DATA && ack.has(index)) conn.stream.write(controlFrame(nonce, CONTENT_ACK));
          };
          const c = await RawConn.open(init, endpoint, cert, onData, m ? new FabricHandshaker(init.ca.certPem, m) : undefined);
          conns.set(index, c);
          await c.roundTrip(HELLO_BASE + index);
        });
        return indices.map((i): Json => ({ index: i, id: String(i) }));
      },
      stall: (a) => {
        const c = conns.get(a.num("index"));
        if (!c) throw new Error("no such remote");
        c.stream.pause();
        return true;
      },
    },
  };
}
