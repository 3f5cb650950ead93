/**
 * `gossip-connect/core`: Fabric's gossip comm, transport-agnostic: the Comm,
 * its connection store, send buffers, handshake and demultiplexer. Knows
 * nothing of Fastify or Connect; transports adapt their streams to
 * {@link WireStream} and {@link Dialer}.
 *
 * The Comm's parts (inbound, outbound, ack, routing, connection store, send
 * buffer, handshake, demultiplexer) are internal and not exported; import
 * them from their files inside this repository only.
 *
 * @packageDocumentation
 */

export { AggregatedSendResult, type SendResult } from "./ack.js";
export { type Clock, sleep, systemClock } from "./clock.js";
// The comm and what its API hands out.
export {
  Comm,
  type CommInit,
  type CommStats,
  type ConnectionEvent,
  type ConnectionSnapshot,
  type EnvelopeScreen,
  type IdentitySwitchEvent,
  type PresumedDeadEvent,
} from "./comm.js";
export { type CommConfig, type CommOptions, defaultCommConfig, type OverflowPolicy, resolveCommConfig } from "./config.js";
export type { ConnectionInfo, ConnectionState } from "./connection.js";
export type { CryptoService, IdentityVerifier } from "./crypto.js";
// Messages, identities and their cryptography.
export { type DataMessageInit, dataMessage } from "./data-message.js";
export type { Predicate, Subscription } from "./demux.js";
export {
  decodeEnvelope,
  encodeEnvelope,
  envelopeBytes,
  gossipMessage,
  noopSign,
  parseGossipMessage,
  receivedFrame,
  serializeGossipMessage,
  signMessage,
  verifyEnvelope,
} from "./envelope.js";
export { authenticationCodes, ErrorCode, GossipError, isErrorCode, isGossipError, meaningOfRemote, remoteEndError } from "./errors.js";
export { EventStream } from "./event-stream.js";
export {
  bytesEqual,
  type PeerIdentity,
  type PkiId,
  parseIdentity,
  pkiIdFromHex,
  pkiIdHex,
  pkiIdOfIdentity,
  type RemotePeer,
  serializeIdentity,
  sha256,
} from "./identity.js";
export type { KnownIdentities } from "./identity-store.js";
// Collaborators a comm is given: logging, metrics, time.
/** @private Shared with the transport layers (src/server); not a stable API. */
export { type Logger, LogLimiter, silentLogger } from "./logger.js";
export { type MemoryEndpointOptions, type MemoryListener, MemoryNetwork, type MemoryNetworkOptions } from "./memory-transport.js";
export { type CommMetrics, type Direction, type DropReason, noopMetrics } from "./metrics.js";
export type { ReceivedMessage } from "./received-message.js";
export { checkTag, defaultTag, type GossipContent, isTagLegal, legalTag } from "./tags.js";

// For transports: the contract they implement.
export { type Dialer, type WireReader, type WireStream, writeTaken } from "./transport.js";

// For tests of layers above the comm: time and a network in memory.
export { VirtualClock } from "./virtual-clock.js";
export { type X509CryptoOptions, X509CryptoService } from "./x509-crypto.js";
