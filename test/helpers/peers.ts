/**
 * Test fixtures: real gossip peers (Fastify HTTP/2 servers with the plugin)
 * on loopback, with throwaway certificates.
 */
import type { AddressInfo } from "node:net";
import { after, before } from "node:test";
import { PeerDialer } from "../../src/client/dialer.js";
import { Comm } from "../../src/core/comm.js";
import type { Dialer } from "../../src/core/transport.js";
import { type X509CryptoOptions, X509CryptoService } from "../../src/core/x509-crypto.js";
import { http2OptionKeys, type PeerOptions } from "../../src/grpc/config.js";
import { type CertificateAuthority, createCa, createPeerMaterial, type PeerMaterial } from "../../src/pki/certificates.js";
import { createGossipServer, type GossipFastifyInstance } from "../../src/server/create-server.js";
import type { GossipPluginOptions } from "../../src/server/plugin.js";

/** A running peer. */
export interface TestPeer {
  readonly app: GossipFastifyInstance;
  readonly comm: Comm;
  readonly endpoint: string;
  readonly material: PeerMaterial;
  close(): Promise<void>;
}

/** Options of {@link startPeer}. */
export interface StartPeerOptions {
  readonly mspId?: string;
  /** The CA of the peer's MSP (a new one per MSP ID by default, shared through `cas`). */
  readonly ca?: CertificateAuthority;
  /** CAs trusted, per MSP ID (the peer's own is added). */
  readonly trust?: Readonly<Record<string, CertificateAuthority>>;
  readonly tls?: boolean;
  readonly options?: PeerOptions;
  readonly port?: number;
  readonly host?: string;
  readonly plugin?: Partial<GossipPluginOptions>;
  readonly material?: PeerMaterial;
  /** Wraps the peer's dialer (to delay or observe dials); the test then owns a comm it builds itself. */
  readonly wrapDialer?: (d: Dialer) => Dialer;
}

const cas = new Map<string, CertificateAuthority>();

/** The HTTP/2 options among `options` (what the plugin takes beside a comm it is given). */
function http2Only(options: PeerOptions): PeerOptions {
  return Object.fromEntries(Object.entries(options).filter(([k]) => (http2OptionKeys as readonly string[]).includes(k)));
}

/** The shared test CA of an MSP ID. */
export function caFor(mspId: string): CertificateAuthority {
  let ca = cas.get(mspId);
  if (!ca) {
    ca = createCa({ commonName: `ca.${mspId.toLowerCase()}`, organization: mspId });
    cas.set(mspId, ca);
  }
  return ca;
}

/** A fresh peer identity of `mspId` from its shared test CA, which it trusts alone, as X.509 crypto options. */
export function identityOf(mspId: string): X509CryptoOptions {
  const material = createPeerMaterial({ mspId, ca: caFor(mspId) });
  return {
    mspId,
    certificate: material.identity.certPem,
    privateKey: material.identity.keyPem,
    trustedRoots: { [mspId]: [caFor(mspId).certPem] },
  };
}

/** Starts a gossip peer on loopback. TLS (mutual, Fabric-style) by default. */
export async function startPeer(o: StartPeerOptions = {}): Promise<TestPeer> {
  const mspId = o.mspId ?? "Org1MSP";
  const ca = o.ca ?? caFor(mspId);
  const material = o.material ?? createPeerMaterial({ mspId, ca });
  const trust: Record<string, CertificateAuthority> = { [mspId]: ca, ...(o.trust ?? {}) };
  const trustedRoots = Object.fromEntries(Object.entries(trust).map(([k, v]) => [k, [v.certPem]]));
  const allCas = [...new Set(Object.values(trust).map((c) => c.certPem))];
  const tls = o.tls ?? true;
  const identity = { mspId, certificate: material.identity.certPem, privateKey: material.identity.keyPem, trustedRoots };
  const clientTls = tls ? { ca: allCas, cert: material.tlsClient.certPem, key: material.tlsClient.keyPem } : undefined;
  const options = { dialTimeoutMs: 1000, ...o.options };
  const serverTls = tls ? { cert: material.tlsServer.certPem, key: material.tlsServer.keyPem, ca: allCas } : undefined;
  let ownComm: Comm | undefined;
  if (o.wrapDialer) {
    ownComm = new Comm({
      crypto: new X509CryptoService(identity),
      dialer: o.wrapDialer(new PeerDialer({ tls: clientTls, options })),
      options,
    });
  }
  const app = await createGossipServer(
    ownComm
      ? { comm: ownComm, tls: serverTls, options: http2Only(options), ...o.plugin }
      : { identity, tls: serverTls, clientTls, options, ...o.plugin },
  );
  await app.listen({ host: o.host ?? "127.0.0.1", port: o.port ?? 0 });
  const addr = app.server.address() as AddressInfo;
  const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  return {
    app,
    comm: app.gossip,
    endpoint: `${host}:${addr.port}`,
    material,
    close: async () => {
      await app.close();
      await ownComm?.stop();
    },
  };
}

/** `p` as a send target: its endpoint and PKI-ID. */
export function toPeer(p: TestPeer): { endpoint: string; pkiId: Uint8Array } {
  return { endpoint: p.endpoint, pkiId: p.comm.pkiId };
}

/** Counts of active resources (sockets, servers, timers, ...) by type. */
function activeResources(): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) m.set(r, (m.get(r) ?? 0) + 1);
  return m;
}

/** What `now` holds beyond `baseline`, as "Type ×n". */
function leftovers(baseline: Map<string, number>, now: Map<string, number>): string[] {
  const out: string[] = [];
  for (const [type, n] of now) {
    const extra = n - (baseline.get(type) ?? 0);
    if (extra > 0) out.push(`${type} ×${extra}`);
  }
  return out;
}

/**
 * The cleanups of one test file, run in its `after` hook: `first` (say,
 * killing worker processes), then `closers` newest first. A close that fails
 * does not stop the others, but fails the file afterwards (with every such
 * error), and so does a socket, server, timer or other handle that is still
 * keeping the process alive about two seconds after everything closed, beyond
 * what was active when `cleanupAfter` was called. `peer()` starts a peer that
 * is closed there. Call once, at the top level of a test file.
 */
export function cleanupAfter(first?: () => Promise<void>): {
  readonly closers: (() => Promise<void>)[];
  peer(o?: StartPeerOptions): Promise<TestPeer>;
} {
  const closers: (() => Promise<void>)[] = [];
  // Taken in a hook, as the check is: each hook holds its own timeout timer.
  let baseline = new Map<string, number>();
  before(() => {
    baseline = activeResources();
  });
  after(async () => {
    const errors: unknown[] = [];
    try {
      await first?.();
    } catch (e) {
      errors.push(e);
    }
    for (const c of closers.reverse()) {
      try {
        await c();
      } catch (e) {
        errors.push(e);
      }
    }
    // Sockets and sessions finish closing a few turns after their close() resolved.
    let left = leftovers(baseline, activeResources());
    for (let i = 0; i < 40 && left.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      left = leftovers(baseline, activeResources());
    }
    if (left.length > 0) errors.push(new Error(`left open after every peer closed: ${left.join(", ")}`));
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `${errors.length} cleanups failed`);
  });
  return {
    closers,
    async peer(o: StartPeerOptions = {}) {
      const p = await startPeer(o);
      closers.push(() => p.close());
      return p;
    },
  };
}

export { dataMessage } from "./messages.js";

/** Resolves with the first value of `iterable` that `pred` accepts, or rejects after `ms`. */
export async function firstMatch<T>(iterable: AsyncIterable<T>, pred: (v: T) => boolean, ms: number): Promise<T> {
  const it = iterable[Symbol.asyncIterator]();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no matching value within ${ms}ms`)), ms);
  });
  try {
    for (;;) {
      const r = await Promise.race([it.next(), timeout]);
      if (r.done) throw new Error("iteration ended without a matching value");
      if (pred(r.value)) return r.value;
    }
  } finally {
    clearTimeout(timer);
    void it.return?.();
  }
}

/** Collects values from `iterable` until `count` arrived or `ms` passed. */
export async function collect<T>(iterable: AsyncIterable<T>, count: number, ms: number): Promise<T[]> {
  const out: T[] = [];
  const it = iterable[Symbol.asyncIterator]();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), ms);
  });
  try {
    while (out.length < count) {
      const r = await Promise.race([it.next(), timeout]);
      if (r === "timeout" || r.done) break;
      out.push(r.value);
    }
  } finally {
    clearTimeout(timer);
  }
  return out;
}

/** Waits until `cond()` is true, polling, or throws after `ms`. */
export async function eventually(cond: () => boolean, ms = 5000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Sum of the values of metric `name` (e.g. `gossip_comm_refused_total`) whose
 * labels include `labels`, read from the peer's Prometheus registry (start the
 * peer with `plugin: { metrics: true }`); 0 when nothing was counted yet.
 */
export async function metricValue(peer: TestPeer, name: string, labels: Readonly<Record<string, string>> = {}): Promise<number> {
  const registry = peer.app.gossipMetrics?.registry;
  if (!registry) throw new Error("metricValue: start the peer with plugin: { metrics: true }");
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`metricValue: no metric ${name}`);
  const { values } = await metric.get();
  let sum = 0;
  for (const v of values) {
    const l = v.labels as Record<string, string | number | undefined>;
    if (Object.entries(labels).every(([k, want]) => String(l[k]) === want)) sum += v.value;
  }
  return sum;
}
