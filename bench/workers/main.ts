/**
 * Entry point of every benchmark worker process (bundled by bench/run.mjs
 * into bench/.build/worker.mjs). Picks the stack and role from BENCH_INIT and
 * loads only that stack's module, so that e.g. a raw worker never loads
 * Fastify or grpc-js.
 */
import { type Init, runWorker, type StackRole, type WorkerSpec } from "./common/ipc.js";

async function make(init: Init): Promise<WorkerSpec> {
  const role = init.role as StackRole;
  switch (init.stack) {
    case "raw":
    case "rawpb": {
      const s = await import("./stacks/raw.js");
      const roles = { server: s.rawServer, client: s.rawClient, receivers: s.rawReceivers, storm: s.rawStorm, remotes: s.rawRemotes };
      return roles[role](init);
    }
    case "rawhs": {
      // W7's floor: a hub and its remotes only (see raw-handshake.ts).
      const s = await import("./stacks/raw.js");
      if (role === "server") return s.rawServer(init);
      if (role === "remotes") return s.rawRemotes(init);
      throw new Error(`stack rawhs has no ${role} role`);
    }
    case "rawg": {
      // W4's floor: raw's Ping server, and a client whose Pings are complete gRPC calls (grpcPing in raw.ts).
      const s = await import("./stacks/raw.js");
      if (role === "server") return s.rawServer(init);
      if (role === "client") return s.rawClient(init);
      throw new Error(`stack rawg has no ${role} role`);
    }
    case "grpc": {
      const s = await import("./stacks/grpcjs.js");
      const roles = { server: s.grpcServer, client: s.grpcClient, receivers: s.grpcReceivers, storm: s.grpcStorm, remotes: s.grpcRemotes };
      return roles[role](init);
    }
    case "gossip": {
      // The client loads gossip.js (Fastify, the Comm) only for the commands that need an app: see gossip-client.ts.
      if (role === "client") return (await import("./stacks/gossip-client.js")).gossipClient(init);
      const s = await import("./stacks/gossip.js");
      const roles = {
        server: s.gossipServer,
        receivers: s.gossipReceivers,
        storm: s.gossipStorm,
        remotes: s.gossipRemotes,
      };
      return roles[role](init);
    }
    case "membership": {
      // W9: membership cost (bench/w9.mjs).
      if (init.role === "sim") return (await import("./membership/sim.js")).membershipSim(init);
      return (await import("./membership/tls-peers.js")).membershipPeers(init);
    }
  }
}

runWorker(make);
