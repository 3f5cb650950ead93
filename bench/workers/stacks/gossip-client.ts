/**
 * Stack (c)'s client worker: W4's Ping client, in a process as bare as the
 * other stacks' Ping clients.
 *
 * W4's Pings go through `GossipClient` from `gossip-connect/client` (the
 * Comm has no Ping on an existing connection), which needs no gossip app.
 * The other commands (W1-W3, W4's probe, W5, W6, W8) are a gossip peer's
 * sends and dials: they need a whole app (Fastify server + Comm, see
 * `gossipPeerClient` in gossip.ts). That app, and the module that builds it,
 * are loaded on the first of those commands only. So a process that only
 * Pings holds no idle app, as raw's and grpc-js's Ping clients hold none: an
 * idle app in its process costs a Ping client CPU per Ping, the raw
 * `node:http2` client as much as ours (bench/README.md, W4).
 */

import { GossipClient } from "../../../src/client/index.js";
import type { Handler, Init, WorkerSpec } from "../common/ipc.js";
import { latencyJson, loadLoop, material, timedLoop } from "../common/util.js";

/** The client commands that need a gossip peer (an app), answered by `gossipPeerClient` in gossip.ts. */
export const peerCommands = ["connect", "stream", "echo", "probe", "setup", "connectMany", "fanout"] as const;
/** One of {@link peerCommands}. */
export type PeerCommand = (typeof peerCommands)[number];

export async function gossipClient(init: Init): Promise<WorkerSpec> {
  const m = material(init, "gossip-pinger");
  const clientTls = init.tls ? { ca: [init.ca.certPem], cert: m.tlsClient.certPem, key: m.tlsClient.keyPem } : undefined;
  let pinger: GossipClient | undefined;
  const need = (what: string): GossipClient => {
    if (pinger === undefined) throw new Error(`${what}: not connected`);
    return pinger;
  };
  let peer: Promise<Readonly<Record<PeerCommand, Handler>>> | undefined;
  const peerHandlers = () => {
    peer ??= import("./gossip.js").then((s) => s.gossipPeerClient(init));
    return peer;
  };
  const handlers: Record<string, Handler> = {
    pingConnect: async (a) => {
      pinger = await GossipClient.connect(a.str("endpoint"), { tls: clientTls });
      await pinger.ping();
      return true;
    },
    ping: async (a) => {
      const p = need("ping");
      return latencyJson(await timedLoop(a.num("count"), a.num("seconds"), () => p.ping()));
    },
    pingLoad: async (a) => {
      const p = need("pingLoad");
      return loadLoop(a.num("inflight"), a.num("seconds"), a.num("maxCount", 1e9), () => p.ping());
    },
  };
  for (const cmd of peerCommands) handlers[cmd] = async (a) => (await peerHandlers())[cmd](a);
  return { info: { pid: process.pid }, handlers };
}
