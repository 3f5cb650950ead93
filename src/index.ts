/**
 * gossip-connect: Hyperledger Fabric's gossip communication layer for
 * Node.js, on Connect-RPC over HTTP/2 and Fastify.
 *
 * - {@link Comm} (from `gossip-connect/core`): authenticated, per-peer ordered
 *   messaging, wire-compatible with Fabric peers.
 * - {@link gossipConnect} / {@link createGossipServer} (from
 *   `gossip-connect/server`): serve it from Fastify.
 * - {@link PeerDialer} / {@link GossipClient} (from `gossip-connect/client`):
 *   outbound connections.
 * - {@link Membership} (from `gossip-connect/membership`): Fabric's gossip
 *   discovery, the membership view on a Comm.
 *
 * @packageDocumentation
 */
export * from "./core/index.js";
export { gossipConnect, createGossipServer, type GossipPluginOptions, type GossipMembershipOptions, type GossipServerOptions, type ServerTlsOptions, type GossipFastifyInstance } from "./server/index.js";
export { PeerDialer, GossipClient, type ClientTlsOptions, type PeerDialerOptions } from "./client/index.js";
export { PrometheusMetrics, PrometheusMembershipMetrics } from "./metrics/index.js";
export {
  Membership,
  type MembershipInit,
  type MembershipStats,
  type MembershipConfig,
  type MembershipOptions,
  type Member,
  type MembershipEvent,
  type MembershipEventType,
  type MembershipMetrics,
  noopMembershipMetrics,
} from "./membership/index.js";
export { defaultHttp2Config, type Http2Config, type Http2Options, type PeerOptions, resolveHttp2Config } from "./grpc/config.js";
export { GrpcStatus, type GrpcStatusCode, grpcStatusOf, GrpcStatusError } from "./grpc/status.js";
export { createCa, createPeerMaterial, issueCertificate, type CertificateAuthority, type PeerMaterial } from "./pki/index.js";
export { version } from "./version.js";
