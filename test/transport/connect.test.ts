// The server's connect-fastify path (Connect protocol) against connect-node's
// Connect client, over h2c and mutual TLS, and gRPC-web (the same path) over
// h2c, through the compliance suite.
//
// Both ends are connect-es streams (async iterables), which have no readBy:
// connections read them through `incoming`, so only that round applies.
import { describeTransport } from "./compliance.js";
import { socketHarness } from "./socket-harness.js";

const pulled = { readBy: false };
describeTransport("Connect protocol over h2c", () => socketHarness({ tls: false, protocol: "connect" }), pulled);
describeTransport("Connect protocol over mutual TLS", () => socketHarness({ tls: true, protocol: "connect" }), pulled);
describeTransport("gRPC-web over h2c", () => socketHarness({ tls: false, protocol: "grpcweb" }), pulled);
