/**
 * Fabric's connection handshake (`authenticateRemotePeer`): both sides send a
 * signed ConnEstablish as soon as the stream opens, then read and check the
 * remote's.
 */
import { create } from "@bufbuild/protobuf";
import { ConnEstablishSchema, type Envelope, GossipMessage_Tag, GossipMessageSchema } from "../gen/gossip/message_pb.js";
import type { Clock } from "./clock.js";
import type { CryptoService } from "./crypto.js";
import { encodeEnvelopeFrame, parseGossipMessage, signMessage, verifyEnvelope } from "./envelope.js";
import { ErrorCode, GossipError } from "./errors.js";
import { bytesEqual, hexOfBytes, type PeerIdentity, type PkiId } from "./identity.js";
import type { KnownIdentities } from "./identity-store.js";
import type { WireStream } from "./transport.js";

/** What a successful handshake proved about the remote. */
export interface HandshakeResult {
  /** The remote's authenticated PKI-ID. */
  readonly pkiId: PkiId;
  /** The remote's serialized identity. */
  readonly identity: PeerIdentity;
  /** The remote's signed ConnEstablish payload (Fabric's `ConnectionInfo.Auth.SignedData`). */
  readonly signedData: Uint8Array;
  /** The remote's signature over `signedData`. */
  readonly signature: Uint8Array;
  /** True when the remote only probed us (it must not be registered). */
  readonly probe: boolean;
  /** The stream's incoming iterator, positioned after the handshake message. */
  readonly incoming: AsyncIterator<readonly Envelope[]>;
  /** Envelopes that arrived in the same batch as the handshake, to be handled first. */
  readonly pending: readonly Envelope[];
}

/** Inputs of {@link handshake}. */
export interface HandshakeOptions {
  readonly crypto: CryptoService;
  /** Our PKI-ID (computed once from our identity). */
  readonly pkiId: PkiId;
  /** Send `probe = true` (the deep probe of `Comm.handshake`). */
  readonly probe: boolean;
  /** How long to wait for the remote's message (Fabric `connTimeout`). */
  readonly connTimeoutMs: number;
  readonly clock: Clock;
  /** Identities the comm's user holds, with their verifiers (see `Comm.useIdentities`). */
  readonly known?: KnownIdentities | undefined;
}

function hex(b: Uint8Array | undefined): string {
  return b === undefined ? "" : Buffer.from(b).toString("hex");
}

/**
 * Runs the handshake on a freshly opened stream. On success the stream is
 * authenticated as the returned PKI-ID; on failure it throws a
 * {@link GossipError} (the caller closes the stream):
 *
 * - `NoTlsCertificate`: TLS is on and the remote showed no certificate (we sent nothing);
 * - `HandshakeTimeout`: no message within `connTimeoutMs`;
 * - `MalformedMessage`, `UnexpectedMessage`, `MissingPkiId`: a bad first message;
 * - `InvalidIdentity`, `PkiIdMismatch`: the identity is not acceptable or not the PKI-ID's;
 * - `CertHashMismatch`: the signed TLS certificate hash is not the certificate on the connection;
 * - `BadSignature`: the message's signature does not verify with the identity.
 *
 * The message's stream-level failures (`Canceled`, `Closed`, ...) pass through.
 */
export async function handshake(stream: WireStream, options: HandshakeOptions): Promise<HandshakeResult> {
  const { crypto } = options;
  const tls = stream.tls;
  if (tls && stream.remoteCertHash === undefined) {
    throw new GossipError(ErrorCode.NoTlsCertificate, "no TLS certificate");
  }

  const ours = create(GossipMessageSchema, {
    nonce: 0n,
    tag: GossipMessage_Tag.EMPTY,
    content: {
      case: "conn",
      value: create(ConnEstablishSchema, {
        pkiId: options.pkiId,
        identity: crypto.identity,
        tlsCertHash: tls ? (stream.localCertHash ?? new Uint8Array(0)) : new Uint8Array(0),
        probe: options.probe,
      }),
    },
  });
  // Like Fabric, a failed write is not reported here: the read below then fails or times out.
  stream.write([encodeEnvelopeFrame(signMessage(crypto, ours))]).catch(() => {});

  const incoming = stream.incoming[Symbol.asyncIterator]();
  const { first, pending } = await readFirst(incoming, stream.remoteAddress, options);

  const msg = parseGossipMessage(first.payload);
  if (msg.content.case !== "conn") {
    throw new GossipError(ErrorCode.UnexpectedMessage, `wrong type: expected a connection message, got ${msg.content.case ?? "nothing"}`);
  }
  const conn = msg.content.value;
  if (conn.pkiId.length === 0) {
    throw new GossipError(ErrorCode.MissingPkiId, "no PKI-ID");
  }
  // An identity held with its verifier (same bytes, same PKI-ID; not expired, see KnownIdentities) was
  // validated when stored: checked with that verifier, not parsed again (the crypto remembers only the
  // identities it checked last).
  const held = options.known?.verifierOf(hexOfBytes(conn.pkiId), conn.identity);
  if (held === undefined) crypto.validateIdentity(conn.identity);
  if (!bytesEqual(crypto.pkiIdOf(conn.identity), conn.pkiId)) {
    throw new GossipError(ErrorCode.PkiIdMismatch, "identity doesn't match the computed pkiID");
  }
  if (tls && !bytesEqual(conn.tlsCertHash, stream.remoteCertHash)) {
    throw new GossipError(
      ErrorCode.CertHashMismatch,
      `Expected ${hex(stream.remoteCertHash)} in remote hash of TLS cert, but got ${hex(conn.tlsCertHash)}`,
    );
  }
  verifyEnvelope(crypto, conn.identity, first, held);

  // What a connection keeps for its whole life is copied out of the received
  // message, which may be a view into a much larger transport read buffer
  // (kept whole by any view of it): one copy of the payload followed by the
  // signature (one backing store rather than two), with the identity and
  // PKI-ID as views into it.
  const payload = first.payload;
  const kept = new Uint8Array(payload.length + first.signature.length);
  kept.set(payload);
  kept.set(first.signature, payload.length);
  const signedData = kept.subarray(0, payload.length);
  return {
    pkiId: within(signedData, payload, conn.pkiId),
    identity: within(signedData, payload, conn.identity),
    signedData,
    signature: kept.subarray(payload.length),
    probe: conn.probe,
    incoming,
    pending,
  };
}

/** `part` as a view into `copy` (a copy of `original`) when it lies within `original`, else a copy of it. */
function within(copy: Uint8Array, original: Uint8Array, part: Uint8Array): Uint8Array {
  const at = part.byteOffset - original.byteOffset;
  if (part.buffer === original.buffer && at >= 0 && at + part.length <= original.length) return copy.subarray(at, at + part.length);
  return new Uint8Array(part);
}

async function readFirst(
  incoming: AsyncIterator<readonly Envelope[]>,
  remoteAddress: string,
  options: HandshakeOptions,
): Promise<{ first: Envelope; pending: readonly Envelope[] }> {
  const { clock, connTimeoutMs } = options;
  let timer: unknown;
  const timeout = new Promise<never>((_, reject) => {
    timer = clock.setTimeout(
      () => reject(new GossipError(ErrorCode.HandshakeTimeout, `timed out waiting for connection message from ${remoteAddress}`)),
      connTimeoutMs,
    );
  });
  try {
    for (;;) {
      const next = incoming.next();
      // The losing side of the race must not become an unhandled rejection.
      next.catch(() => {});
      const r = await Promise.race([next, timeout]);
      if (r.done) {
        throw new GossipError(ErrorCode.Closed, `stream from ${remoteAddress} ended before the handshake`);
      }
      const [first, ...pending] = r.value;
      if (first !== undefined) return { first, pending };
    }
  } finally {
    clock.clearTimeout(timer);
  }
}
