/**
 * `gossip-connect/server`: the Fastify plugin that serves Fabric's Gossip
 * service, and a ready-made HTTP/2 server.
 *
 * @packageDocumentation
 */

export { defaultHttp2Config, type Http2Config, type Http2Options, type PeerOptions, resolveHttp2Config } from "../grpc/config.js";
export { createGossipServer, type GossipFastifyInstance, type GossipServerOptions, type ServerTlsOptions } from "./create-server.js";
export { Http2Refusal } from "./errors.js";
export { gossipService, registerGossip } from "./gossip-service.js";
export { SessionWatch } from "./http2-sessions.js";
export {
  type GossipMembershipOptions,
  type GossipPluginOptions,
  gossipConnect,
  gossipConnect as default,
  gossipStreamPath,
} from "./plugin.js";
export { ReflectionResponder, registerReflection } from "./reflection.js";
