/**
 * `gossip-connect/core`: Fabric's gossip comm, transport-agnostic: the Comm,
 * its connection store, send buffers, handshake and demultiplexer. Knows
 * nothing of Fastify or Connect; transports adapt their streams to
 * {@link WireStream} and {@link Dialer}.
 *
 * @packageDocumentation
 */
export {
  Comm,
  type CommInit,
  type CommStats,
  type ConnectionEvent,
  type ConnectionSnapshot,
  type IdentitySwitchEvent,
  type PresumedDeadEvent,
} from "./comm.js";
export { AggregatedSendResult, type SendResult } from "./ack.js";
export { type CommConfig, type CommOptions, defaultCommConfig, type OverflowPolicy, resolveCommConfig } from "./config.js";
export type { ConnectionInfo, ConnectionState } from "./connection.js";
export type { CryptoService } from "./crypto.js";
export { Demux, type Predicate, Subscription } from "./demux.js";
export { EventStream } from "./event-stream.js";
export {
  decodeEnvelope,
  encodeEnvelope,
  gossipMessage,
  noopSign,
  parseGossipMessage,
  serializeGossipMessage,
  signMessage,
  verifyEnvelope,
} from "./envelope.js";
export { authenticationCodes, ErrorCode, GossipError, GrpcStatus, type GrpcStatusCode, isGossipError } from "./errors.js";
export { handshake, type HandshakeOptions, type HandshakeResult } from "./handshake.js";
export {
  bytesEqual,
  parseIdentity,
  type PeerIdentity,
  type PkiId,
  pkiIdFromHex,
  pkiIdHex,
  pkiIdOfIdentity,
  type RemotePeer,
  serializeIdentity,
  sha256,
} from "./identity.js";
export { type Logger, LogLimiter, silentLogger } from "./logger.js";
export { type CommMetrics, type Direction, type DropReason, noopMetrics } from "./metrics.js";
export type { ReceivedMessage } from "./received-message.js";
export { SendBuffer, type SendBufferSink } from "./send-buffer.js";
export { type Dialer, type WireStream, writeTaken } from "./transport.js";
export { type Clock, sleep, systemClock } from "./clock.js";
export { checkTag, defaultTag, type GossipContent, isTagLegal, legalTag } from "./tags.js";
export { X509CryptoService, type X509CryptoOptions } from "./x509-crypto.js";
export { curveOrders, encodeDerSignature, isLowS, parseDerSignature, toLowS } from "./ecdsa.js";
