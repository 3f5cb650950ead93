import type * as http2 from "node:http2";
import { create } from "@bufbuild/protobuf";
import { type ConnectRouter, createContextKey, type ServiceImpl } from "@connectrpc/connect";
import type { Comm } from "../core/comm.js";
import { EmptySchema, Gossip } from "../gen/gossip/message_pb.js";
import { socketFacts } from "../grpc/socket-facts.js";
import { connectWireStream } from "./connect-wire-stream.js";

/** Context key under which the plugin passes the raw Node request to handlers. */
export const kRawRequest = createContextKey<http2.Http2ServerRequest | undefined>(undefined, {
  description: "gossip-connect raw request",
});

/**
 * The Gossip service for Connect: Ping answers at once (unauthenticated, as
 * Fabric's); GossipStream over the Connect and gRPC-web protocols is handed to
 * the comm through {@link connectWireStream}. (gRPC GossipStreams never get
 * here: the plugin serves them on its raw fast path.)
 */
export function gossipService(comm: Comm): ServiceImpl<typeof Gossip> {
  return {
    ping() {
      return create(EmptySchema);
    },
    gossipStream(requests, ctx) {
      const req = ctx.values.get(kRawRequest);
      const facts = req
        ? socketFacts(req.socket, req.stream.session)
        : { remoteAddress: "unknown", tls: false, remoteCertHash: undefined, localCertHash: undefined };
      const { stream, responses } = connectWireStream(requests, ctx, facts, req?.stream);
      void comm.handleStream(stream);
      return responses;
    },
  };
}

/** Registers the Gossip service on a Connect router. */
export function registerGossip(router: ConnectRouter, comm: Comm): void {
  router.service(Gossip, gossipService(comm));
}
