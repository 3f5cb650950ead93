/**
 * W7's floor, stack "rawhs" (a+hs): raw node:http2 (stack a) plus exactly the
 * per-connection work Fabric's connection handshake requires, and nothing of
 * gossip-connect's Comm (no connection store, send buffer, demux or decoder
 * beyond the first message).
 *
 * A remote connects as Fabric's createConnection does (a Ping, then the
 * GossipStream; see raw.ts's RawConn.open). On every GossipStream both sides
 * send a signed ConnEstablish as the stream opens and check the remote's, by
 * gossip-connect's own `handshake()` (the same checks in the same order)
 * with its `X509CryptoService` (the same crypto): certificate parse and chain
 * check of the remote's identity, once per identity, with its public key
 * kept in the service's identity cache (Fabric's MSP cache keeps a
 * deserialized identity); PKI-ID; the signed TLS certificate hash against
 * the certificate on the connection; signature verification; our own
 * signature. The hub then keeps, per connection, what
 * Fabric's `ConnectionInfo` and identity mapper keep: PKI-ID, identity and
 * the signed ConnEstablish with its signature (the handshake's copy), by
 * PKI-ID. Every message after the handshake is raw stack a's.
 *
 * `handshake()` reads a `WireStream`; the one here is the least that runs it
 * on a raw stream: it hands over the first gRPC message, writes gRPC frames,
 * and carries the certificate hashes read from the socket once, for the
 * handshake only.
 */
import type { Http2Session, Http2Stream } from "node:http2";
import type { TLSSocket } from "node:tls";
import { systemClock } from "../../../src/core/clock.js";
import { decodeEnvelope } from "../../../src/core/envelope.js";
import { ErrorCode, GossipError } from "../../../src/core/errors.js";
import { handshake } from "../../../src/core/handshake.js";
import { pkiIdHex } from "../../../src/core/identity.js";
import type { WireStream } from "../../../src/core/transport.js";
import { X509CryptoService } from "../../../src/core/x509-crypto.js";
import type { Envelope } from "../../../src/gen/gossip/message_pb.js";
import { certHash } from "../../../src/grpc/socket-facts.js";
import type { PeerMaterial } from "../../../src/pki/index.js";
import { MSP_ID } from "../common/util.js";

/** What a connection keeps of its handshake (Fabric's ConnectionInfo: ID, identity, auth). */
export interface Authenticated {
  readonly pkiId: Uint8Array;
  readonly identity: Uint8Array;
  readonly signedData: Uint8Array;
  readonly signature: Uint8Array;
  /** The identity's expiry, whole seconds (the identity mapper's). */
  readonly expiresAtS: number;
}

/** As gossip-connect's benchmark peers: 200 handshakes at once on 2 loaded cores may take longer than Fabric's default. */
const connTimeoutMs = 15_000;

/** One side's identity and crypto, for every handshake it runs. */
export class FabricHandshaker {
  readonly crypto: X509CryptoService;

  /**
   * `caPem`: the CA trusted for `mspId`'s identities; `m`: this side's
   * material (its identity signs; its TLS certificate is the one whose hash
   * it signs).
   */
  constructor(caPem: string, m: PeerMaterial, mspId = MSP_ID) {
    this.crypto = new X509CryptoService({
      mspId,
      certificate: m.identity.certPem,
      privateKey: m.identity.keyPem,
      trustedRoots: { [mspId]: [caPem] },
    });
  }

  /**
   * Runs Fabric's handshake on `stream` (either side) and resolves with what
   * the connection keeps, and the bytes that came after the remote's
   * ConnEstablish (a copy), if any: the caller reads the stream on from
   * there. Until then the stream is read here, and afterwards nothing of the
   * handshake stays attached to it.
   */
  async run(stream: Http2Stream, session: Http2Session): Promise<{ auth: Authenticated; rest: Buffer | undefined }> {
    const socket = session.socket as TLSSocket;
    const tls = socket.encrypted === true;
    let settle: { resolve(r: IteratorResult<readonly Envelope[]>): void; reject(e: unknown): void } | undefined;
    const first = new Promise<IteratorResult<readonly Envelope[]>>((resolve, reject) => (settle = { resolve, reject }));
    // Read chunks are not from Node's shared Buffer pool, and nothing here
    // is: not even a passing copy (see `unpooled`).
    let got: Buffer | undefined;
    let rest: Buffer | undefined;
    const onData = (chunk: Buffer): void => {
      if (settle === undefined) {
        rest = joined(rest, chunk);
        return;
      }
      got = got === undefined ? chunk : joined(got, chunk);
      if (got.length < 5) return;
      const end = 5 + got.readUInt32BE(1);
      if (got.length < end) return;
      try {
        settle.resolve({ done: false, value: [decodeEnvelope(got.subarray(5, end))] });
      } catch (e) {
        settle.reject(e);
      }
      settle = undefined;
      if (got.length > end) rest = unpooled(got.subarray(end));
    };
    const onClose = (): void => {
      settle?.reject(new GossipError(ErrorCode.Closed, "stream closed in the handshake"));
      settle = undefined;
    };
    stream.on("data", onData);
    stream.on("close", onClose);
    const wire: WireStream = {
      remoteAddress: `${socket.remoteAddress}:${socket.remotePort}`,
      tls,
      remoteCertHash: tls ? certHash(socket.getPeerX509Certificate()?.raw) : undefined,
      localCertHash: tls ? certHash(socket.getX509Certificate()?.raw) : undefined,
      incoming: { [Symbol.asyncIterator]: () => ({ next: () => first }) },
      write: (envelopes) => {
        for (const e of envelopes) stream.write(grpcFrame(e));
        return Promise.resolve();
      },
      end: () => stream.end(),
      abort: () => stream.close(),
      closed: new Promise(() => {}),
    };
    try {
      const hs = await handshake(wire, { crypto: this.crypto, pkiId: this.crypto.pkiId, probe: false, connTimeoutMs, clock: systemClock });
      const expires = this.crypto.expiresAt(hs.identity);
      const auth: Authenticated = {
        pkiId: hs.pkiId,
        identity: hs.identity,
        signedData: hs.signedData,
        signature: hs.signature,
        expiresAtS: expires === undefined ? 0 : Math.ceil(expires.getTime() / 1000),
      };
      return { auth, rest };
    } finally {
      stream.off("data", onData);
      stream.off("close", onClose);
    }
  }
}

/** The hub's per-connection records, by PKI-ID (Fabric's identity mapper and connection infos in one map). */
export class AuthenticatedPeers {
  private readonly byPkiId = new Map<string, Authenticated>();

  add(a: Authenticated): void {
    this.byPkiId.set(pkiIdHex(a.pkiId), a);
  }

  get size(): number {
    return this.byPkiId.size;
  }
}

/**
 * A copy of `bytes` in its own memory. A copy from Node's shared Buffer pool
 * (Buffer.from, Buffer.concat of small sizes) would pin pool slabs next to
 * each TLS socket's pooled ALPN slice, ~1 KB per connection that is neither
 * raw's nor the handshake's (see src/core/envelope.ts's encodeEnvelopeFrame).
 */
function unpooled(bytes: Uint8Array): Buffer {
  return joined(undefined, bytes);
}

/** `a` followed by `b`, in memory of their own (not the pool's; see `unpooled`). */
function joined(a: Uint8Array | undefined, b: Uint8Array): Buffer {
  const out = Buffer.allocUnsafeSlow((a?.length ?? 0) + b.length);
  if (a !== undefined) out.set(a);
  out.set(b, a?.length ?? 0);
  return out;
}

/**
 * A serialized Envelope as a gRPC frame, in its own memory: a frame from
 * Node's shared Buffer pool would pin pool slabs next to each TLS socket's
 * pooled ALPN slice (see src/core/envelope.ts's encodeEnvelopeFrame).
 */
function grpcFrame(envelope: Uint8Array): Uint8Array {
  const f = new Uint8Array(5 + envelope.length);
  new DataView(f.buffer).setUint32(1, envelope.length);
  f.set(envelope, 5);
  return f;
}
