/**
 * A child process hosting gossip-connect peers with the membership layer, for
 * the multi-process membership test (multi-process.test.ts).
 *
 * Protocol: JSON lines. The first stdin line is a {@link MeshWorkerConfig};
 * stdout gets `{ ev: "ready", peers: [{ endpoint, pkiId }] }` once every peer
 * listens, then `{ ev: "view", endpoint, alive: [hex...], dead: [hex...] }`
 * whenever a peer's view changes (checked every 20 ms).
 */
import { createInterface } from "node:readline";
import pino from "pino";
import { pkiIdHex } from "../../src/core/identity.js";
import type { MembershipOptions } from "../../src/membership/index.js";
import { createGossipServer, type GossipFastifyInstance } from "../../src/server/create-server.js";
import type { WorkerPeerConfig } from "../chaos/peer-worker.js";

/** What the parent sends. */
export interface MeshWorkerConfig {
  readonly peers: readonly (WorkerPeerConfig & { readonly bootstrap: readonly string[] })[];
  /** Membership timing (every peer). */
  readonly membership: Omit<MembershipOptions, "internalEndpoint" | "bootstrapPeers">;
}

const out = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify({ t: Date.now(), ...o })}\n`);
process.on("uncaughtException", (e) => out({ ev: "error", what: e instanceof Error ? (e.stack ?? e.message) : String(e) }));
process.on("unhandledRejection", (e) => out({ ev: "error", what: e instanceof Error ? (e.stack ?? e.message) : String(e) }));

const lines = createInterface({ input: process.stdin });
const first = await new Promise<string>((resolve) => lines.once("line", resolve));
const cfg = JSON.parse(first) as MeshWorkerConfig;

const apps: { app: GossipFastifyInstance; endpoint: string }[] = [];
for (const p of cfg.peers) {
  if (p.listen === undefined || p.tlsServer === undefined || p.tlsClient === undefined)
    throw new Error("mesh-worker peers listen with TLS");
  const endpoint = `${p.listen.host}:${p.listen.port}`;
  const cas = [...new Set(Object.values(p.trustedRoots).flat())];
  const app = await createGossipServer({
    identity: { mspId: p.mspId, certificate: p.identity.certPem, privateKey: p.identity.keyPem, trustedRoots: p.trustedRoots },
    tls: { cert: p.tlsServer.certPem, key: p.tlsServer.keyPem, ca: cas },
    clientTls: { ca: cas, cert: p.tlsClient.certPem, key: p.tlsClient.keyPem },
    logger: pino({ level: process.env.MESH_LOG ?? "silent" }, pino.destination(2)).child({ peer: endpoint }),
    membership: { ...cfg.membership, internalEndpoint: endpoint, bootstrapPeers: p.bootstrap },
  });
  await app.listen({ host: p.listen.host, port: p.listen.port });
  apps.push({ app, endpoint });
}
out({ ev: "ready", peers: apps.map((a) => ({ endpoint: a.endpoint, pkiId: pkiIdHex(a.app.gossip.pkiId) })) });

const last = new Map<string, string>();
const timer = setInterval(() => {
  for (const { app, endpoint } of apps) {
    const m = app.gossipMembership;
    if (!m) continue;
    const alive = m
      .alive()
      .map((x) => x.pkiIdHex)
      .sort();
    const dead = m
      .dead()
      .map((x) => x.pkiIdHex)
      .sort();
    const key = `${alive.join(",")}|${dead.join(",")}`;
    if (last.get(endpoint) === key) continue;
    last.set(endpoint, key);
    out({ ev: "view", endpoint, alive, dead });
  }
}, 20);

lines.on("close", () => {
  clearInterval(timer);
  void Promise.all(apps.map((a) => a.app.close())).then(() => process.exit(0));
});
