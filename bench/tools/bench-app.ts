/**
 * The gossip-connect app of the Ping tools (ping-ab, ping-cost,
 * ping-server-ab), as W4's stack c builds it: an identity of MSP `BenchMSP`
 * issued by `ca` (the tool's CA, so that its raw clients' certificates are
 * trusted too), mutual TLS from the same CA, and `options`. Without `ca`,
 * a CA of its own and cleartext h2c.
 */
import { createPeerMaterial, loadCa } from "../../src/pki/index.js";
import { createGossipServer, type GossipFastifyInstance, type GossipServerOptions } from "../../src/server/index.js";

export function benchApp(
  ca: { certPem: string; keyPem: string } | undefined,
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
