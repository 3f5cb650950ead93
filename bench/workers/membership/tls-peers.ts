/**
 * W9 (b): membership over real sockets. One process hosts `count` peers,
 * each a Fastify app from `createGossipServer` (mutual TLS, certificates from
 * the run's CA, X509CryptoService) with a `Membership` on its Comm
 * (`app.gossip`). Fabric's timing is divided by `factor` (stated in the
 * report), so that a run fits the benchmark's time budget.
 *
 * Commands: `listen` (servers up, no membership yet), `start` (memberships
 * with the given seeds), `status` (view sizes, comm counters, CPU, heap),
 * `kill` (crash one local peer: its server and comm close, no goodbye).
 */

import { monitorEventLoopDelay } from "node:perf_hooks";
import {
  type CommOptions,
  createGossipServer,
  type GossipFastifyInstance,
  Membership,
  type MembershipOptions,
  X509CryptoService,
} from "../../../src/index.js";
import type { Init, Json, WorkerSpec } from "../common/ipc.js";
import { memory } from "../common/ipc.js";
import { MSP_ID, material } from "../common/util.js";

/** Waits for `p`, at most `ms`. */
function bounded(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p.then(() => undefined), new Promise<void>((r) => (timer = setTimeout(r, ms)))]).finally(() => clearTimeout(timer));
}

interface Peer {
  readonly app: GossipFastifyInstance;
  readonly endpoint: string;
  membership?: Membership;
  alive: boolean;
}

/** Fabric's defaults divided by `f` (the burst latency is a delay, not an interval: kept). */
export function scaledTiming(f: number): Partial<MembershipOptions> {
  return {
    aliveTimeIntervalMs: 5000 / f,
    aliveExpirationTimeoutMs: 25_000 / f,
    pullIntervalMs: 4000 / f,
    publishCertPeriodMs: 10_000 / f,
    digestWaitTimeMs: 1000 / f,
    requestWaitTimeMs: 1500 / f,
    responseWaitTimeMs: 2000 / f,
    connectResponseTimeoutMs: 5000 / f,
    maxVerificationsPerPeerPerSecond: 200 * f,
  };
}

/** As stack c's peers: Fabric's comm defaults, with what 64 peers on one loopback address need. */
const commOptions: CommOptions = {
  maxHandshakesPerSecondPerAddress: 1_000_000,
  maxUnauthenticatedStreams: 4096,
  dialTimeoutMs: 15_000,
  connTimeoutMs: 15_000,
};

export async function membershipPeers(init: Init): Promise<WorkerSpec> {
  const count = init.opts.num("count");
  const base = init.opts.num("base");
  const factor = init.opts.num("factor");
  const peers: Peer[] = [];
  let heapBefore = 0;
  /** Why sends found a peer unreachable (the comm's presumed-dead events), by "code" or "code/remote code". */
  const deadReasons: Record<string, number> = {};
  /** Connections opened and closed, over all peers of this process (churn). */
  const churn = { opened: 0, closed: 0 };
  /** How late this process's event loop runs (CPU starvation shows as seconds here). */
  const loopDelay = monitorEventLoopDelay({ resolution: 20 });
  loopDelay.enable();
  const ca = init.ca.certPem;

  const totals = () => {
    let messages = 0;
    let bytes = 0;
    let connections = 0;
    let dropped = 0;
    let overflow = 0;
    let handshakeFailures = 0;
    const refused: Record<string, number> = {};
    for (const p of peers) {
      if (!p.alive) continue;
      const s = p.app.gossip.stats();
      messages += s.messagesSent;
      bytes += s.bytesSent;
      connections += s.connections.inbound + s.connections.outbound;
      dropped += s.dropped;
      overflow += s.overflow;
      handshakeFailures += s.handshakeFailures;
      for (const [k, v] of Object.entries(p.membership?.stats().refused ?? {})) refused[k] = (refused[k] ?? 0) + v;
    }
    return { messages, bytes, connections, dropped, overflow, handshakeFailures, refused, deadReasons, ...churn };
  };

  return {
    info: { count, base },
    handlers: {
      listen: async (): Promise<Json> => {
        for (let i = 0; i < count; i++) {
          const m = material(init, `w9p${base + i}`);
          const crypto = new X509CryptoService({
            mspId: MSP_ID,
            certificate: m.identity.certPem,
            privateKey: m.identity.keyPem,
            trustedRoots: { [MSP_ID]: [ca] },
          });
          const app = await createGossipServer({
            crypto,
            tls: init.tls ? { cert: m.tlsServer.certPem, key: m.tlsServer.keyPem, ca: [ca] } : undefined,
            clientTls: init.tls ? { ca: [ca], cert: m.tlsClient.certPem, key: m.tlsClient.keyPem } : undefined,
            options: commOptions,
          });
          await app.listen({ host: "127.0.0.1", port: 0 });
          const addr = app.server.address();
          if (addr === null || typeof addr === "string") throw new Error("no address");
          peers.push({ app, endpoint: `127.0.0.1:${addr.port}`, alive: true });
          // Diagnostics (each `for await` is a subscriber of its own; both end when the comm stops).
          void (async () => {
            for await (const e of app.gossip.presumedDead) {
              const k = e.error.remoteCode === undefined ? e.error.code : `${e.error.code}/${e.error.remoteCode}`;
              deadReasons[k] = (deadReasons[k] ?? 0) + 1;
            }
          })();
          void (async () => {
            for await (const e of app.gossip.connectionEvents) churn[e.type === "connected" ? "opened" : "closed"]++;
          })();
          (peers[i] as Peer & { crypto?: X509CryptoService }).crypto = crypto;
        }
        heapBefore = memory(true).heapUsed;
        return { endpoints: peers.map((p) => p.endpoint) };
      },
      start: (a): Json => {
        const seeds = a.strs("seeds");
        const timing = scaledTiming(factor);
        peers.forEach((p, i) => {
          const g = base + i;
          const bootstrapPeers = g < seeds.length ? seeds.filter((s) => s !== p.endpoint) : [seeds[g % seeds.length] as string];
          const crypto = (p as Peer & { crypto: X509CryptoService }).crypto;
          p.membership = new Membership({
            comm: p.app.gossip,
            crypto,
            options: { internalEndpoint: p.endpoint, externalEndpoint: p.endpoint, bootstrapPeers, ...timing },
          });
        });
        return null;
      },
      status: (a): Json => {
        const c = process.cpuUsage();
        const views = peers.filter((p) => p.alive).map((p) => p.membership?.stats().alive ?? 0);
        const out: Record<string, Json> = { views, cpuUs: c.user + c.system, running: views.length, ...totals() };
        if (a.bool("mem", false)) {
          const m = memory(true);
          const known = peers
            .filter((p) => p.alive)
            .reduce((s, p) => s + (p.membership?.stats().alive ?? 0) + (p.membership?.stats().dead ?? 0), 0);
          out.heapDelta = m.heapUsed - heapBefore;
          out.loopDelayP99Ms = loopDelay.percentile(99) / 1e6;
          out.loopDelayMaxMs = loopDelay.max / 1e6;
          out.known = known;
          out.rss = m.rss;
        }
        return out;
      },
      kill: async (a): Promise<Json> => {
        // A crash: no goodbye. The server stops listening and the comm cuts its connections; a graceful
        // HTTP/2 close could wait for peers that keep redialling, so it is not awaited past a bound.
        const p = peers[a.num("index")] as Peer;
        p.alive = false;
        await p.membership?.stop();
        await bounded(Promise.all([p.app.gossip.stop(), p.app.close()]), 3000);
        return null;
      },
      close: async (): Promise<Json> => {
        await Promise.all(peers.filter((p) => p.alive).map((p) => p.membership?.stop()));
        await bounded(Promise.all(peers.filter((p) => p.alive).map((p) => p.app.close())), 5000);
        return null;
      },
    },
  };
}
