/**
 * `gossip-connect/client`: outbound connections to gossip peers.
 *
 * @packageDocumentation
 */

export type { Http2Options, PeerOptions } from "../grpc/config.js";
export { ClientWireStream } from "./client-wire-stream.js";
export { PeerDialer, type PeerDialerOptions } from "./dialer.js";
export { type ClientTlsOptions, GossipClient, type GossipClientOptions } from "./gossip-client.js";
export { toGossipError } from "./node-error.js";
export { GuardedSessionManager, guardSessionPing } from "./session-manager.js";
