/**
 * `gossip-connect/client`: outbound connections to gossip peers.
 *
 * @packageDocumentation
 */
export { PeerDialer, type PeerDialerOptions } from "./dialer.js";
export { GossipClient, type ClientTlsOptions, type GossipClientOptions } from "./gossip-client.js";
export { ClientWireStream } from "./client-wire-stream.js";
export { GuardedSessionManager, guardSessionPing } from "./session-manager.js";
export { toGossipError } from "./node-error.js";
export type { Http2Options, PeerOptions } from "../grpc/config.js";
