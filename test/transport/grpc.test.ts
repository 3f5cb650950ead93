// Our gRPC client (PeerDialer) against the server's raw gRPC path, over
// cleartext HTTP/2 (h2c) and mutual TLS, through the compliance suite.
import { describeTransport } from "./compliance.js";
import { socketHarness } from "./socket-harness.js";

describeTransport("gRPC over h2c", () => socketHarness({ tls: false, protocol: "grpc" }));
describeTransport("gRPC over mutual TLS", () => socketHarness({ tls: true, protocol: "grpc" }));
