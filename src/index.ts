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

export { type ClientTlsOptions, GossipClient, PeerDialer, type PeerDialerOptions } from "./client/index.js";
export * from "./core/index.js";
export { defaultHttp2Config, type Http2Config, type Http2Options, type PeerOptions, resolveHttp2Config } from "./grpc/config.js";
export { GrpcStatus, type GrpcStatusCode, GrpcStatusError, grpcStatusOf } from "./grpc/status.js";
export {
  type ConnectOptions,
  type DuplicateKind,
  type Member,
  Membership,
  type MembershipConfig,
  type MembershipEvent,
  type MembershipEventType,
  type MembershipInit,
  type MembershipMetrics,
  type MembershipOptions,
  type MembershipStats,
  noopMembershipMetrics,
  type RefusedKind,
} from "./membership/index.js";
export { PrometheusMembershipMetrics, PrometheusMetrics } from "./metrics/index.js";
export { type CertificateAuthority, createCa, createPeerMaterial, issueCertificate, type PeerMaterial } from "./pki/index.js";
export {
  createGossipServer,
  type GossipFastifyInstance,
  type GossipMembershipOptions,
  type GossipPluginOptions,
  type GossipServerOptions,
  gossipConnect,
  type ServerTlsOptions,
} from "./server/index.js";
export { version } from "./version.js";
