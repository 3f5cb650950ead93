/** Starts a ForeignPeer with throwaway material from the shared test CAs. */
import { createPeerMaterial, type PeerMaterial } from "../../src/pki/certificates.js";
import { type ForeignDiscoveryOptions, ForeignDiscoveryPeer } from "./foreign-discovery-peer.js";
import { ForeignPeer, type ForeignPeerOptions } from "./foreign-peer.js";
import { caFor } from "./peers.js";

/** Short timings for a foreign discovery peer in tests: alive every 200 ms, dead after 1 s of silence. */
export const fastForeignDiscovery: ForeignDiscoveryOptions = {
  aliveIntervalMs: 200,
  aliveExpirationTimeoutMs: 1000,
  reconnectIntervalMs: 400,
  connectResponseTimeoutMs: 1000,
  pullIntervalMs: 400,
  digestWaitMs: 100,
  requestWaitMs: 150,
  responseWaitMs: 200,
};

/** Starts a ForeignPeer with throwaway material from the shared test CAs. */
export async function startForeign(
  o: { mspId?: string; tls?: boolean; trust?: readonly string[] } & Partial<Omit<ForeignPeerOptions, "tls">> = {},
): Promise<{ peer: ForeignPeer; material: PeerMaterial }> {
  const mspId = o.mspId ?? "Org1MSP";
  const material = createPeerMaterial({
    mspId,
    ca: caFor(mspId),
    commonName: `foreign.${mspId.toLowerCase()}`,
  });
  const trustIds = [...new Set([mspId, ...(o.trust ?? [])])];
  const trustedRoots = Object.fromEntries(trustIds.map((id) => [id, [caFor(id).certPem]]));
  const cas = trustIds.map((id) => caFor(id).certPem);
  const peer = await ForeignPeer.start({
    ...o,
    mspId,
    identityCert: material.identity.certPem,
    identityKey: material.identity.keyPem,
    tls:
      (o.tls ?? true)
        ? {
            cert: material.tlsServer.certPem,
            key: material.tlsServer.keyPem,
            ca: cas,
          }
        : undefined,
    trustedRoots,
  });
  return { peer, material };
}

/**
 * Starts a foreign discovery peer. Pass the `material` of an earlier one (and
 * its `port`) to restart "the same peer": same identity, new inc_num.
 */
export async function startForeignDiscovery(
  o: {
    mspId?: string;
    tls?: boolean;
    trust?: readonly string[];
    material?: PeerMaterial;
    port?: number;
    discovery?: ForeignDiscoveryOptions;
  } = {},
): Promise<{ peer: ForeignDiscoveryPeer; material: PeerMaterial }> {
  const mspId = o.mspId ?? "Org1MSP";
  const material =
    o.material ??
    createPeerMaterial({
      mspId,
      ca: caFor(mspId),
      commonName: `foreign.${mspId.toLowerCase()}`,
    });
  const trustIds = [...new Set([mspId, ...(o.trust ?? [])])];
  const trustedRoots = Object.fromEntries(trustIds.map((id) => [id, [caFor(id).certPem]]));
  const cas = trustIds.map((id) => caFor(id).certPem);
  const peer = await ForeignDiscoveryPeer.start({
    mspId,
    port: o.port,
    identityCert: material.identity.certPem,
    identityKey: material.identity.keyPem,
    tls:
      (o.tls ?? true)
        ? {
            cert: material.tlsServer.certPem,
            key: material.tlsServer.keyPem,
            ca: cas,
          }
        : undefined,
    trustedRoots,
    discovery: o.discovery,
  });
  return { peer, material };
}
