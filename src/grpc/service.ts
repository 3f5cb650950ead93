/**
 * The HTTP/2 paths of Fabric's Gossip service, as gRPC, Connect and gRPC-web
 * clients call them: derived once from the generated service descriptor, for
 * the client and the server.
 */
import { Gossip } from "../gen/gossip/message_pb.js";

/** Path of the bidi stream, `/gossip.Gossip/GossipStream`. */
export const gossipStreamPath = `/${Gossip.typeName}/${Gossip.method.gossipStream.name}`;

/** Path of the unary Ping, `/gossip.Gossip/Ping`. */
export const pingPath = `/${Gossip.typeName}/${Gossip.method.ping.name}`;
