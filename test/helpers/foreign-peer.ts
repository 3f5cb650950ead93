/**
 * A Fabric-style gossip peer we did not build on our own transport: gRPC by
 * @grpc/grpc-js, messages by Hyperledger's published bindings
 * (@hyperledger/fabric-protos, google-protobuf). It speaks Fabric's handshake
 * by the book (send ConnEstablish first, read the remote's within connTimeout,
 * check PKI-ID, TLS cert hash, low-S signature), so it checks our wire
 * compatibility from outside.
 *
 * Only the handshake's crypto is shared with our code in spirit (ECDSA P-256 /
 * SHA-256, DER, low-S), and even that is reimplemented here with node:crypto.
 * Payloads with nonces are parsed by hand where exactness matters, because the
 * google-protobuf bindings read uint64 nonces as JS numbers.
 */
import { createHash, createPrivateKey, type KeyObject, sign, verify, X509Certificate } from "node:crypto";
import { createRequire } from "node:module";
import type * as grpcTypes from "@grpc/grpc-js";
import type * as fabricTypes from "@hyperledger/fabric-protos";

const require = createRequire(import.meta.url);
const grpc = require("@grpc/grpc-js") as typeof grpcTypes;
const fabric = require("@hyperledger/fabric-protos") as typeof fabricTypes;
const { gossip, msp } = fabric;

type Envelope = fabricTypes.gossip.Envelope;
type Duplex = grpcTypes.ServerDuplexStream<Envelope, Envelope> | grpcTypes.ClientDuplexStream<Envelope, Envelope>;

const p256Order = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

export function sha256(b: Uint8Array): Buffer {
  return createHash("sha256").update(b).digest();
}

/** Parses DER (r, s) (enough for ECDSA signatures). */
export function derRS(der: Uint8Array): { r: bigint; s: bigint } {
  const b = Buffer.from(der);
  let at = 2;
  if ((b[1] ?? 0) & 0x80) at += (b[1] ?? 0) & 0x7f;
  const int = (): bigint => {
    if (b[at] !== 0x02) throw new Error("not a DER integer");
    const len = b[at + 1] ?? 0;
    const v = BigInt(`0x${b.subarray(at + 2, at + 2 + len).toString("hex") || "0"}`);
    at += 2 + len;
    return v;
  };
  return { r: int(), s: int() };
}

export function lowS(der: Uint8Array): Uint8Array {
  const { r, s } = derRS(der);
  if (s <= p256Order >> 1n) return der;
  const enc = (v: bigint) => {
    let hex = v.toString(16);
    if (hex.length % 2) hex = `0${hex}`;
    let bytes = Buffer.from(hex, "hex");
    if ((bytes[0] ?? 0) & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
    return Buffer.concat([Buffer.from([0x02, bytes.length]), bytes]);
  };
  const body = Buffer.concat([enc(r), enc(p256Order - s)]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}

/** What the foreign peer learned from a handshake. */
export interface ForeignConnInfo {
  readonly pkiId: Buffer;
  readonly identity: Uint8Array;
  readonly mspId: string;
  readonly probe: boolean;
}

/** A message the foreign peer received after a handshake. */
export interface ForeignReceived {
  readonly from: ForeignConnInfo;
  /** The raw GossipMessage bytes (Envelope.payload). */
  readonly payload: Uint8Array;
  readonly signature: Uint8Array;
  /** The exact 64-bit nonce, read by hand from `payload`. */
  readonly nonce: bigint;
  /** The oneof content field number present (13 empty, 14 conn, 22 ack, 8 data_msg, ...). */
  readonly contentField: number | undefined;
}

/** Reads field 1 (nonce, varint) and the first oneof content field number (>= 5) from a GossipMessage by hand. */
export function peekGossipMessage(payload: Uint8Array): {
  nonce: bigint;
  contentField: number | undefined;
} {
  let at = 0;
  let nonce = 0n;
  let contentField: number | undefined;
  const varint = (): bigint => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      const b = payload[at++];
      if (b === undefined) throw new Error("truncated varint");
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return v;
      shift += 7n;
    }
  };
  while (at < payload.length) {
    const key = Number(varint());
    const field = key >> 3;
    const wt = key & 7;
    if (wt === 0) {
      const v = varint();
      if (field === 1) nonce = v;
    } else if (wt === 2) {
      const len = Number(varint());
      if (field >= 5 && contentField === undefined) contentField = field;
      at += len;
    } else if (wt === 1) at += 8;
    else if (wt === 5) at += 4;
    else throw new Error(`wire type ${wt}`);
  }
  return { nonce, contentField };
}

/** Options of a foreign peer. */
export interface ForeignPeerOptions {
  readonly mspId: string;
  /** Enrollment certificate and key (PEM). */
  readonly identityCert: string;
  readonly identityKey: string;
  /** TLS pair used as server and as client certificate; absent for h2c. */
  readonly tls?: {
    readonly cert: string;
    readonly key: string;
    readonly ca: readonly string[];
  };
  /** Trusted identity CAs per MSP ID. */
  readonly trustedRoots: Readonly<Record<string, readonly string[]>>;
  /** Reproduce Fabric's quirk Q2: a replaced connection's clean-up closes its replacement too. */
  readonly quirkQ2?: boolean;
  /** Acknowledge every received data message with this error text ("" = success); undefined = never ack. */
  readonly autoAck?: string;
  /** Answer Ping after this many ms (Fabric's TestNonResponsivePing). */
  readonly pingDelayMs?: number;
  /** Handshake read timeout. @default 2000 */
  readonly connTimeoutMs?: number;
  /**
   * Behave like a real Fabric peer when the dialer half-closes an accepted
   * stream: Fabric's handler returns the error of its next Recv (io.EOF), so
   * the stream ends with status UNKNOWN "EOF" instead of OK.
   */
  readonly fabricEof?: boolean;
  /** Refuse every handshake after sending ours, as Fabric does for an identity it does not accept (status UNKNOWN with the reason). */
  readonly refuseAll?: string;
  /** Port to listen on (127.0.0.1); 0 picks a free one. @default 0 */
  readonly port?: number;
  /** Keep every received message in `received`. @default true */
  readonly record?: boolean;
  /** Called for every message received after a handshake (the discovery layer hooks in here). */
  readonly onMessage?: (from: ForeignConnInfo, env: Envelope, reply: (env: Envelope) => void) => void;
  /** Called when a connection is registered (`up`) or ends or is replaced (`down`). */
  readonly onConnection?: (info: ForeignConnInfo, event: "up" | "down") => void;
}

/** What a verified serialized identity holds. */
export interface ForeignIdentity {
  readonly mspId: string;
  readonly cert: X509Certificate;
  readonly pkiId: Buffer;
}

interface ForeignConn {
  readonly info: ForeignConnInfo;
  readonly stream: Duplex;
}

/**
 * A Fabric-conformant gossip peer on grpc-js. Serves Gossip (Ping and
 * GossipStream), dials with `connect()`, sends with `send()`, records what it
 * receives in `received`.
 */
export class ForeignPeer {
  readonly received: ForeignReceived[] = [];
  readonly handshakeErrors: string[] = [];
  /** How many times quirk Q2 closed a replacement connection. */
  q2Teardowns = 0;
  readonly pkiId: Buffer;
  readonly identity: Uint8Array;
  endpoint = "";
  private readonly key: KeyObject;
  private readonly conns = new Map<string, ForeignConn>();
  private readonly server: grpcTypes.Server;
  private readonly clients: grpcTypes.Client[] = [];
  private readonly waiters: (() => void)[] = [];

  /** Delayed Ping answers, cleared on close. */
  private readonly pingTimers = new Set<NodeJS.Timeout>();

  private constructor(private readonly o: ForeignPeerOptions) {
    const idBytes = Buffer.from(new X509Certificate(o.identityCert).toString());
    const sid = new msp.SerializedIdentity();
    sid.setMspid(o.mspId);
    sid.setIdBytes(idBytes);
    this.identity = sid.serializeBinary();
    this.pkiId = sha256(Buffer.concat([Buffer.from(o.mspId, "utf8"), idBytes]));
    this.key = createPrivateKey(o.identityKey);
    this.server = new grpc.Server({
      "grpc.max_receive_message_length": 100 * 1024 * 1024,
      "grpc.max_send_message_length": 100 * 1024 * 1024,
    });
    this.server.addService(gossip.GossipService, {
      ping: (_call: unknown, cb: grpcTypes.sendUnaryData<fabricTypes.gossip.Empty>) => {
        const answer = () => cb(null, new gossip.Empty());
        if (this.o.pingDelayMs) {
          const t = setTimeout(() => {
            this.pingTimers.delete(t);
            answer();
          }, this.o.pingDelayMs);
          this.pingTimers.add(t);
        } else answer();
      },
      gossipStream: (call: grpcTypes.ServerDuplexStream<Envelope, Envelope>) => {
        void this.serve(call);
      },
    });
  }

  /** Starts a foreign peer listening on 127.0.0.1 (ephemeral port). */
  static async start(o: ForeignPeerOptions): Promise<ForeignPeer> {
    const p = new ForeignPeer(o);
    // Request, but don't require, a client certificate: Fabric's default. grpc-js'
    // createSsl cannot (it requests only when it also requires), the
    // certificate-provider credentials can.
    const creds = o.tls
      ? grpc.experimental.createCertificateProviderServerCredentials(
          staticProvider(o.tls.ca.join("\n"), o.tls.cert, o.tls.key),
          staticProvider(o.tls.ca.join("\n"), o.tls.cert, o.tls.key),
          false,
        )
      : grpc.ServerCredentials.createInsecure();
    const port = await new Promise<number>((resolve, reject) =>
      p.server.bindAsync(`127.0.0.1:${o.port ?? 0}`, creds, (err, port) => (err ? reject(err) : resolve(port))),
    );
    p.endpoint = `127.0.0.1:${port}`;
    // The certificate providers deliver on the next ticks; accept no dial before.
    await new Promise((r) => setTimeout(r, 20));
    return p;
  }

  /** Number of authenticated connections held. */
  get connectionCount(): number {
    return this.conns.size;
  }

  /** PKI-IDs (hex) of the peers it holds connections with. */
  connectedPeers(): string[] {
    return [...this.conns.keys()];
  }

  /** Resolves when `cond()` holds, checked after every received message, or rejects after `ms`. */
  async waitFor(cond: () => boolean, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`foreign peer: condition not met within ${ms}ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 50));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Builds our signed ConnEstablish envelope, with optional mutations for negative tests. */
  connEstablish(
    opts: {
      tlsCertHash?: Uint8Array;
      probe?: boolean;
      mutate?: (conn: fabricTypes.gossip.ConnEstablish, msg: fabricTypes.gossip.GossipMessage) => void;
      mutateSignature?: (sig: Uint8Array) => Uint8Array;
    } = {},
  ): Envelope {
    const conn = new gossip.ConnEstablish();
    conn.setPkiId(this.pkiId);
    conn.setIdentity(this.identity);
    conn.setTlsCertHash(opts.tlsCertHash ?? new Uint8Array(0));
    conn.setProbe(opts.probe ?? false);
    const msg = new gossip.GossipMessage();
    msg.setNonce(0);
    msg.setTag(gossip.GossipMessage.Tag.EMPTY);
    msg.setConn(conn);
    opts.mutate?.(conn, msg);
    const payload = msg.serializeBinary();
    let signature: Uint8Array = lowS(sign("sha256", payload, { key: this.key, dsaEncoding: "der" }));
    if (opts.mutateSignature) signature = opts.mutateSignature(signature);
    const env = new gossip.Envelope();
    env.setPayload(payload);
    env.setSignature(signature);
    return env;
  }

  /** Verifies a remote's handshake Envelope the way Fabric does; throws a Fabric-like error text. */
  verifyConnEstablish(env: Envelope, remoteCertHash: Buffer | undefined): ForeignConnInfo {
    const payload = env.getPayload_asU8();
    const msg = gossip.GossipMessage.deserializeBinary(payload);
    const conn = msg.getConn();
    if (!conn) throw new Error("wrong type");
    const pkiId = Buffer.from(conn.getPkiId_asU8());
    if (pkiId.length === 0) throw new Error("no PKI-ID");
    const identity = conn.getIdentity_asU8();
    const { mspId, cert, pkiId: computed } = this.checkIdentity(identity);
    if (!computed.equals(pkiId)) throw new Error("identity doesn't match the computed pkiID");
    if (this.o.tls && !Buffer.from(conn.getTlsCertHash_asU8()).equals(remoteCertHash ?? Buffer.alloc(0))) {
      throw new Error("tls cert hash mismatch");
    }
    const sig = env.getSignature_asU8();
    if (derRS(sig).s > p256Order >> 1n) throw new Error("Invalid S. Must be smaller than half the order");
    if (!verify("sha256", payload, { key: cert.publicKey, dsaEncoding: "der" }, sig)) throw new Error("bad signature");
    return { pkiId, identity, mspId, probe: conn.getProbe() };
  }

  /**
   * Checks a serialized identity as Fabric's MSP does for gossip: an MSP we
   * trust, a certificate issued by one of its CAs, not expired. Throws otherwise.
   */
  checkIdentity(identity: Uint8Array): ForeignIdentity {
    const sid = msp.SerializedIdentity.deserializeBinary(identity);
    const mspId = sid.getMspid();
    const idBytes = Buffer.from(sid.getIdBytes_asU8());
    const roots = this.o.trustedRoots[mspId];
    if (!roots) throw new Error(`untrusted MSP ${mspId}`);
    const cert = new X509Certificate(idBytes);
    if (!roots.some((r) => cert.checkIssued(new X509Certificate(r)) && cert.verify(new X509Certificate(r).publicKey))) {
      throw new Error("identity not issued by a trusted CA");
    }
    if (Date.parse(cert.validTo) < Date.now()) throw new Error("gossipping peer identity expired");
    return {
      mspId,
      cert,
      pkiId: sha256(Buffer.concat([Buffer.from(mspId, "utf8"), idBytes])),
    };
  }

  /** Signs `data` with our enrollment key (ECDSA/SHA-256, DER, low-S). */
  signBytes(data: Uint8Array): Uint8Array {
    return lowS(sign("sha256", data, { key: this.key, dsaEncoding: "der" }));
  }

  /** True when `signature` over `data` verifies with `cert`'s key and has a low S. */
  verifyBytes(cert: X509Certificate, signature: Uint8Array, data: Uint8Array): boolean {
    try {
      if (signature.length === 0 || derRS(signature).s > p256Order >> 1n) return false;
      return verify("sha256", data, { key: cert.publicKey, dsaEncoding: "der" }, signature);
    } catch {
      return false;
    }
  }

  private ownCertHash(): Uint8Array {
    return this.o.tls ? sha256(new X509Certificate(this.o.tls.cert).raw) : new Uint8Array(0);
  }

  private peerCertHash(stream: Duplex): Buffer | undefined {
    const raw = stream.getAuthContext?.()?.sslPeerCertificate?.raw;
    return raw ? sha256(raw) : undefined;
  }

  /** Reads the first Envelope within connTimeout. */
  private firstEnvelope(stream: Duplex): Promise<Envelope> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error("timed out waiting for connection message"));
      }, this.o.connTimeoutMs ?? 2000);
      const onData = (env: Envelope) => {
        cleanup();
        stream.pause();
        resolve(env);
      };
      const onError = (e: Error) => {
        cleanup();
        reject(e);
      };
      const cleanup = () => {
        clearTimeout(timer);
        stream.off("data", onData);
        stream.off("error", onError);
      };
      stream.on("data", onData);
      stream.on("error", onError);
    });
  }

  private async serve(call: grpcTypes.ServerDuplexStream<Envelope, Envelope>): Promise<void> {
    const remoteHash = this.peerCertHash(call);
    if (this.o.tls && !remoteHash) {
      call.destroy(
        Object.assign(new Error("no TLS certificate"), {
          code: grpc.status.UNKNOWN,
        }),
      );
      return;
    }
    call.write(this.connEstablish({ tlsCertHash: this.ownCertHash() }));
    let info: ForeignConnInfo;
    try {
      info = this.verifyConnEstablish(await this.firstEnvelope(call), remoteHash);
      if (this.o.refuseAll !== undefined) throw new Error(this.o.refuseAll);
    } catch (e) {
      this.handshakeErrors.push((e as Error).message);
      call.emit("error", e);
      call.end();
      return;
    }
    if (info.probe) {
      call.end();
      return;
    }
    this.register({ info, stream: call });
    this.read({ info, stream: call });
    call.resume();
  }

  private register(conn: ForeignConn): void {
    const key = conn.info.pkiId.toString("hex");
    const old = this.conns.get(key);
    this.conns.set(key, conn);
    this.o.onConnection?.(conn.info, "up");
    if (old && old.stream !== conn.stream) {
      closeStream(old.stream);
      // Fabric's handler of the replaced connection returns now and cleans up
      // by PKI-ID: with quirk Q2 that closes the replacement too.
      if (this.o.quirkQ2) {
        setImmediate(() => {
          const current = this.conns.get(key);
          this.conns.delete(key);
          if (current && current.stream !== old.stream) {
            this.q2Teardowns++;
            closeStream(current.stream);
          }
        });
      }
    }
  }

  private read(conn: ForeignConn): void {
    const key = conn.info.pkiId.toString("hex");
    let ended = false;
    const onEnd = () => {
      // Clean-up of a connection that ended by itself: only its own entry.
      if (this.conns.get(key)?.stream === conn.stream) this.conns.delete(key);
      if (!ended) {
        ended = true;
        this.o.onConnection?.(conn.info, "down");
      }
    };
    conn.stream.on("close", onEnd);
    conn.stream.on("data", (env: Envelope) => {
      const payload = env.getPayload_asU8();
      let peeked: { nonce: bigint; contentField: number | undefined };
      try {
        peeked = peekGossipMessage(payload);
      } catch {
        return; // garbage: a Fabric peer drops it too
      }
      const { nonce, contentField } = peeked;
      if (this.o.record ?? true)
        this.received.push({
          from: conn.info,
          payload,
          signature: env.getSignature_asU8(),
          nonce,
          contentField,
        });
      if (contentField === 8 && this.o.autoAck !== undefined) this.ack(conn, nonce, this.o.autoAck);
      this.o.onMessage?.(conn.info, env, (reply) => {
        if (this.conns.get(key)?.stream === conn.stream) conn.stream.write(reply);
      });
      for (const w of this.waiters.splice(0)) w();
    });
    conn.stream.on("end", () => {
      onEnd();
      const server = conn.stream as grpcTypes.ServerDuplexStream<Envelope, Envelope>;
      if (this.o.fabricEof && typeof server.sendMetadata === "function") {
        server.emit("error", Object.assign(new Error("EOF"), { code: grpc.status.UNKNOWN, details: "EOF" }));
      }
    });
    conn.stream.on("error", onEnd);
  }

  /** Sends an ack for `nonce` with `error` text (nonce written by hand: exact 64 bits). */
  private ack(conn: ForeignConn, nonce: bigint, error: string): void {
    const ack = new gossip.Acknowledgement();
    ack.setError(error);
    const msg = new gossip.GossipMessage();
    msg.setAck(ack);
    const rest = msg.serializeBinary(); // nonce 0 omitted; prepend field 1 by hand
    this.write(conn.stream, Buffer.concat([varintField(1, nonce), rest]));
  }

  private write(stream: Duplex, payload: Uint8Array, signature: Uint8Array = new Uint8Array(0)): void {
    const env = new gossip.Envelope();
    env.setPayload(payload);
    env.setSignature(signature);
    stream.write(env);
  }

  /**
   * Dials `endpoint` the way Fabric does (Ping within connTimeout, then the
   * stream and the handshake); returns the remote's info. Registers the
   * connection unless `probe`.
   */
  async connect(endpoint: string, opts: { probe?: boolean } = {}): Promise<ForeignConnInfo> {
    let serverCert: Buffer | undefined;
    const creds = this.o.tls
      ? grpc.credentials.createSsl(Buffer.from(this.o.tls.ca.join("\n")), Buffer.from(this.o.tls.key), Buffer.from(this.o.tls.cert), {
          checkServerIdentity: (_host, cert) => {
            serverCert = cert.raw;
            return undefined;
          },
        })
      : grpc.credentials.createInsecure();
    const client = new gossip.GossipClient(endpoint, creds, {
      "grpc.max_receive_message_length": 100 * 1024 * 1024,
      "grpc.max_send_message_length": 100 * 1024 * 1024,
      "grpc.keepalive_time_ms": 60_000,
    });
    this.clients.push(client);
    // A dial that fails, or a connection that ends, releases its client (loops that redial must not pile them up).
    const release = () => {
      client.close();
      const i = this.clients.indexOf(client);
      if (i >= 0) this.clients.splice(i, 1);
    };
    let stream: grpcTypes.ClientDuplexStream<Envelope, Envelope> | undefined;
    let info: ForeignConnInfo;
    try {
      await new Promise<void>((resolve, reject) =>
        client.ping(new gossip.Empty(), { deadline: Date.now() + (this.o.connTimeoutMs ?? 2000) }, (err) =>
          err ? reject(err) : resolve(),
        ),
      );
      stream = client.gossipStream();
      stream.on("error", () => {});
      stream.write(
        this.connEstablish({
          tlsCertHash: this.ownCertHash(),
          probe: opts.probe,
        }),
      );
      info = this.verifyConnEstablish(await this.firstEnvelope(stream), serverCert ? sha256(serverCert) : undefined);
    } catch (e) {
      stream?.cancel();
      release();
      throw e;
    }
    if (opts.probe) {
      stream.cancel();
      release();
      return info;
    }
    stream.on("close", release);
    this.register({ info, stream });
    this.read({ info, stream });
    stream.resume();
    return info;
  }

  /**
   * Opens a bare GossipStream to `endpoint` (no handshake): for tests that
   * speak the handshake themselves. `withClientCert: false` dials TLS without
   * a client certificate.
   */
  openRawStream(
    endpoint: string,
    opts: { withClientCert?: boolean } = {},
  ): {
    stream: grpcTypes.ClientDuplexStream<Envelope, Envelope>;
    serverCertHash: () => Buffer | undefined;
    received: Envelope[];
    ended: Promise<grpcTypes.StatusObject | Error>;
  } {
    let serverCert: Buffer | undefined;
    const withCert = opts.withClientCert ?? true;
    const creds = this.o.tls
      ? grpc.credentials.createSsl(
          Buffer.from(this.o.tls.ca.join("\n")),
          withCert ? Buffer.from(this.o.tls.key) : null,
          withCert ? Buffer.from(this.o.tls.cert) : null,
          {
            checkServerIdentity: (_host, cert) => {
              serverCert = cert.raw;
              return undefined;
            },
          },
        )
      : grpc.credentials.createInsecure();
    const client = new gossip.GossipClient(endpoint, creds, {
      "grpc.max_send_message_length": 100 * 1024 * 1024,
    });
    this.clients.push(client);
    const stream = client.gossipStream();
    const received: Envelope[] = [];
    stream.on("data", (env: Envelope) => received.push(env));
    const ended = new Promise<grpcTypes.StatusObject | Error>((resolve) => {
      stream.on("status", resolve);
      stream.on("error", resolve);
    });
    return {
      stream,
      serverCertHash: () => (serverCert ? sha256(serverCert) : undefined),
      received,
      ended,
    };
  }

  /** Our TLS certificate's hash (what a correct handshake of ours carries), empty without TLS. */
  get tlsCertHash(): Uint8Array {
    return this.ownCertHash();
  }

  /** Sends a raw GossipMessage payload (unsigned) on the connection to `pkiIdHex`. */
  sendPayload(pkiIdHex: string, payload: Uint8Array): void {
    const conn = this.conns.get(pkiIdHex);
    if (!conn) throw new Error(`foreign peer: no connection to ${pkiIdHex}`);
    this.write(conn.stream, payload);
  }

  /** Sends an Envelope as built on the connection to `pkiIdHex`; false when there is none. */
  sendEnvelope(pkiIdHex: string, env: Envelope): boolean {
    const conn = this.conns.get(pkiIdHex);
    if (!conn) return false;
    conn.stream.write(env);
    return true;
  }

  /** Closes the connection to `pkiIdHex`, if any (Fabric's CloseConn). */
  closeConn(pkiIdHex: string): void {
    const conn = this.conns.get(pkiIdHex);
    if (!conn) return;
    this.conns.delete(pkiIdHex);
    closeStream(conn.stream);
  }

  /** Fabric's Probe: a fresh connection to `endpoint` and one Ping, no handshake. Rejects when it fails. */
  async ping(endpoint: string): Promise<void> {
    const creds = this.o.tls
      ? grpc.credentials.createSsl(Buffer.from(this.o.tls.ca.join("\n")), Buffer.from(this.o.tls.key), Buffer.from(this.o.tls.cert), {
          checkServerIdentity: () => undefined,
        })
      : grpc.credentials.createInsecure();
    const client = new gossip.GossipClient(endpoint, creds);
    try {
      await new Promise<void>((resolve, reject) =>
        client.ping(new gossip.Empty(), { deadline: Date.now() + (this.o.connTimeoutMs ?? 2000) }, (err) =>
          err ? reject(err) : resolve(),
        ),
      );
    } finally {
      client.close();
    }
  }

  /** Closes every connection and the server. */
  async close(): Promise<void> {
    for (const t of this.pingTimers) clearTimeout(t);
    this.pingTimers.clear();
    for (const c of this.conns.values()) closeStream(c.stream);
    this.conns.clear();
    for (const c of this.clients) c.close();
    // A graceful shutdown waits for every open call, and a remote may keep one
    // open (it redials a peer it believes alive): bounded, then forced.
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      timer = setTimeout(resolve, 500);
      this.server.tryShutdown(() => resolve());
    });
    clearTimeout(timer);
    this.server.forceShutdown();
  }
}

/** Ends a server-side stream (status OK) or cancels a client-side one. */
function closeStream(stream: Duplex): void {
  if (typeof (stream as grpcTypes.ServerDuplexStream<Envelope, Envelope>).sendMetadata === "function") {
    (stream as grpcTypes.ServerDuplexStream<Envelope, Envelope>).end();
  } else {
    (stream as grpcTypes.ClientDuplexStream<Envelope, Envelope>).cancel();
  }
}

/**
 * A grpc-js certificate provider that always holds the same certificates.
 * Listeners are called on the next tick: grpc-js registers its watcher only
 * after adding the listener, so a synchronous call would be lost.
 */
function staticProvider(ca: string, cert: string, key: string): grpcTypes.experimental.CertificateProvider {
  return {
    addCaCertificateListener: (l) => setImmediate(() => l({ caCertificate: Buffer.from(ca) })),
    removeCaCertificateListener: () => {},
    addIdentityCertificateListener: (l) => setImmediate(() => l({ certificate: Buffer.from(cert), privateKey: Buffer.from(key) })),
    removeIdentityCertificateListener: () => {},
  };
}

/** Encodes a varint field (wire type 0) by hand. */
export function varintField(field: number, value: bigint): Buffer {
  const out = [field << 3];
  let v = value;
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Buffer.from(out);
}
