/**
 * The Ping servers of the Ping tools (ping-ab, ping-cost, ping-server-ab),
 * as W4 runs them: stack a's raw `node:http2` Ping server and stack c's
 * gossip-connect app. With a CA, both speak mutual TLS with certificates of
 * it (so the tools' raw clients, issued by the same CA, are trusted);
 * without, cleartext h2c.
 */
import * as http2 from "node:http2";
import { createPeerMaterial, loadCa } from "../../src/pki/index.js";
import { createGossipServer, type GossipFastifyInstance, type GossipServerOptions } from "../../src/server/index.js";
import { onBarePingStream, rawSettings } from "../workers/stacks/raw.js";

/** A CA as PEM: its certificate and key. */
export interface CaPem {
  certPem: string;
  keyPem: string;
}

/**
 * Stack a's Ping server (W4's raw server, with its HTTP/2 settings) on
 * 127.0.0.1, listening: `tls` is its certificate and key and the CA its
 * clients' certificates must chain to (required); cleartext without.
 */
export async function rawPingServer(tls?: {
  cert: string;
  key: string;
  ca: string;
}): Promise<{ server: http2.Http2Server | http2.Http2SecureServer; port: number }> {
  const server = tls
    ? http2.createSecureServer({
        key: tls.key,
        cert: tls.cert,
        ca: [tls.ca],
        requestCert: true,
        rejectUnauthorized: true,
        settings: rawSettings,
      })
    : http2.createServer({ settings: rawSettings });
  server.on("session", (s) => s.on("error", () => {}));
  server.on("stream", onBarePingStream);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as { port: number }).port };
}

/**
 * Stack c's app, not yet listening: an identity of MSP `BenchMSP` issued by
 * `ca`, mutual TLS from the same CA, and `options`. Without `ca`, a CA of
 * its own and cleartext h2c.
 */
export function benchApp(
  ca: CaPem | undefined,
  commonName: string,
  options: GossipServerOptions["options"],
): Promise<GossipFastifyInstance> {
  const p = createPeerMaterial({ mspId: "BenchMSP", commonName, ...(ca ? { ca: loadCa(ca.certPem, ca.keyPem) } : {}) });
  const root = p.ca.certPem;
  return createGossipServer({
    identity: { mspId: "BenchMSP", certificate: p.identity.certPem, privateKey: p.identity.keyPem, trustedRoots: { BenchMSP: [root] } },
    tls: ca ? { cert: p.tlsServer.certPem, key: p.tlsServer.keyPem, ca: [root] } : undefined,
    clientTls: ca ? { ca: [root], cert: p.tlsClient.certPem, key: p.tlsClient.keyPem } : undefined,
    options,
  });
}
