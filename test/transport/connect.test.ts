// The server's connect-fastify path (Connect protocol) against connect-node's
// Connect client, over h2c and mutual TLS, and gRPC-web (the same path) over
// h2c, through the compliance suite.
import { describeTransport } from "./compliance.js";
import { socketHarness } from "./socket-harness.js";

describeTransport("Connect protocol over h2c", () => socketHarness({ tls: false, protocol: "connect" }));
describeTransport("Connect protocol over mutual TLS", () => socketHarness({ tls: true, protocol: "connect" }));
describeTransport("gRPC-web over h2c", () => socketHarness({ tls: false, protocol: "grpcweb" }));
