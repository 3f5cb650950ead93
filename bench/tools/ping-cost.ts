/**
 * Client CPU per Ping at 32 in flight: `GossipClient.ping()` against a bare
 * `node:http2` Ping (W4's stack a client), alternated in the same process
 * against one raw server in a child process (W4 profiles show the client is
 * the bound; CPU per call is a far steadier figure than Pings/s on a loaded
 * machine).
 *
 *   node --import tsx bench/tools/ping-cost.ts [rounds] [--h2c] [--gossip-only] [--gossip-server]
 *
 * A third client, `floor`, is W4's floor (stack a+g): the bare Ping made
 * as a complete gRPC client makes it (`grpcPing`: deadline sent and kept,
 * answer checked). The three alternate in one process, so what the
 * process's own state costs (its JIT's choices, its heap) is the same for
 * all three.
 *
 * Prints, per round, µs of client CPU (user + system) per Ping and Pings/s
 * for each client, and at the end the medians and the ratios gossip/raw,
 * floor/raw and gossip/floor of CPU per Ping (`--gossip-only`: GossipClient alone, e.g. under
 * `node --cpu-prof`). The server's CPU per Ping is printed too;
 * `--gossip-server` makes the server a gossip-connect app (as in W4's stack
 * c) instead of the bare one. Bundle it with esbuild for figures like the bench's (tsx's
 * `keepNames` slows some code down):
 *
 *   npx esbuild bench/tools/ping-cost.ts --bundle --platform=node --format=esm \
 *     --packages=external --outfile=/tmp/ping-cost.mjs && node /tmp/ping-cost.mjs
 */
import { fork } from "node:child_process";
import * as http2 from "node:http2";
import { GossipClient } from "../../src/client/gossip-client.js";
import { createCa, issueCertificate } from "../../src/pki/index.js";
import { grpcPing, ping as rawPing } from "../workers/stacks/raw.js";
import { benchApp, rawPingServer } from "./ping-servers.js";

const args = process.argv.slice(2);
const tls = !args.includes("--h2c");
const gossipOnly = args.includes("--gossip-only");
const gossipServer = args.includes("--gossip-server");

interface Material {
  ca: string;
  caKey: string;
  server: { cert: string; key: string };
  client: { cert: string; key: string };
}

/** The child: W4's raw Ping server (bench/workers/stacks/raw.ts). */
async function serve(m: Material | undefined): Promise<void> {
  const { port } = await rawPingServer(m ? { cert: m.server.cert, key: m.server.key, ca: m.ca } : undefined);
  process.send?.({ port });
}

/** The child with `--gossip-server`: a gossip-connect app at the bench's options. */
async function serveGossip(m: Material | undefined): Promise<void> {
  const app = await benchApp(m ? { certPem: m.ca, keyPem: m.caKey } : undefined, "ping-server", { connTimeoutMs: 15_000 });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const addr = app.server.address();
  process.send?.({ port: typeof addr === "object" && addr ? addr.port : 0 });
}

/** `count` calls of `fn`, `inflight` at a time: µs of CPU per call and calls/s. */
async function measure(count: number, inflight: number, fn: () => Promise<void>): Promise<{ us: number; perSecond: number }> {
  let started = 0;
  const lane = async () => {
    while (started < count) {
      started++;
      await fn();
    }
  };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: inflight }, lane));
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { us: (cpu.user + cpu.system) / count, perSecond: (count / ms) * 1000 };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

async function main(): Promise<void> {
  const rounds = Number(args.find((a) => /^\d+$/.test(a)) ?? 7);
  let m: Material | undefined;
  if (tls) {
    const ca = createCa({ commonName: "ca.ping-cost" });
    const server = issueCertificate(ca, { commonName: "server", usage: "server", altNames: ["127.0.0.1"] });
    const client = issueCertificate(ca, { commonName: "client", usage: "client" });
    m = {
      ca: ca.certPem,
      caKey: ca.keyPem,
      server: { cert: server.certPem, key: server.keyPem },
      client: { cert: client.certPem, key: client.keyPem },
    };
  }
  const child = fork(process.argv[1] ?? "", ["--serve", ...args], { execArgv: process.execArgv });
  child.send({ m });
  const port = await new Promise<number>((resolve) => child.once("message", (x: { port: number }) => resolve(x.port)));
  const endpoint = `127.0.0.1:${port}`;
  const session = http2.connect(`${tls ? "https" : "http"}://${endpoint}`, m ? { ca: m.ca, cert: m.client.cert, key: m.client.key } : {});
  session.on("error", () => {});
  await new Promise((r) => session.once("connect", r));
  const client = await GossipClient.connect(endpoint, m ? { tls: { ca: m.ca, cert: m.client.cert, key: m.client.key } } : {});
  const count = 20_000;
  const inflight = 32;
  const raw = gossipOnly ? async () => {} : () => rawPing(session);
  const floor = gossipOnly ? async () => {} : () => grpcPing(session, 15_000);
  const ours = () => client.ping();
  const serverCpu = () =>
    new Promise<number>((resolve) => {
      child.once("message", (x: { cpu: number }) => resolve(x.cpu));
      child.send({ cpu: true });
    });
  /** `measure`, plus the server's µs of CPU per call. */
  const both = async (fn: () => Promise<void>) => {
    const s0 = await serverCpu();
    const r = await measure(count, inflight, fn);
    return { ...r, server: ((await serverCpu()) - s0) / count };
  };
  await measure(count, inflight, raw);
  await measure(count, inflight, floor);
  await measure(count, inflight, ours);
  const rows: { raw: number; floor: number; ours: number; rawRate: number; oursRate: number }[] = [];
  for (let r = 0; r < rounds; r++) {
    // The three clients in turn, each round in another order.
    const order = [
      ["raw", raw],
      ["floor", floor],
      ["ours", ours],
    ] as const;
    const turn = order.map((_, i) => order[(i + r) % order.length] as (typeof order)[number]);
    const got: Record<string, { us: number; perSecond: number; server: number }> = {};
    for (const [name, fn] of turn) got[name] = await both(fn);
    const a = got.raw as { us: number; perSecond: number; server: number };
    const f = got.floor as { us: number; perSecond: number; server: number };
    const c = got.ours as { us: number; perSecond: number; server: number };
    rows.push({ raw: a.us, floor: f.us, ours: c.us, rawRate: a.perSecond, oursRate: c.perSecond });
    console.log(
      `round ${r + 1}: raw ${a.us.toFixed(1)} us/ping ${a.perSecond.toFixed(0)}/s (server ${a.server.toFixed(1)} us), ` +
        `floor ${f.us.toFixed(1)} us/ping, gossip ${c.us.toFixed(1)} us/ping ${c.perSecond.toFixed(0)}/s (server ${c.server.toFixed(1)} us), ` +
        `cpu c/a ${(c.us / a.us).toFixed(2)}, floor/a ${(f.us / a.us).toFixed(2)}`,
    );
  }
  const raws = rows.map((x) => x.raw);
  const ourss = rows.map((x) => x.ours);
  console.log(
    `median: raw ${median(raws).toFixed(1)} us/ping, floor ${median(rows.map((x) => x.floor)).toFixed(1)}, gossip ${median(ourss).toFixed(1)} us/ping, ` +
      `median per-round ratio c/a ${median(rows.map((x) => x.ours / x.raw)).toFixed(3)}, floor/a ${median(rows.map((x) => x.floor / x.raw)).toFixed(3)}, ` +
      `c/floor ${median(rows.map((x) => x.ours / x.floor)).toFixed(3)}; rate c/a ${median(rows.map((x) => x.oursRate / x.rawRate)).toFixed(2)}`,
  );
  client.close();
  session.destroy();
  child.disconnect();
}

if (args.includes("--serve")) {
  process.once("message", (x: { m?: Material }) => void (gossipServer ? serveGossip(x.m) : serve(x.m)));
  process.on("message", (x: { cpu?: boolean }) => {
    if (!x.cpu) return;
    const u = process.cpuUsage();
    process.send?.({ cpu: u.user + u.system });
  });
  process.on("disconnect", () => process.exit(0));
} else {
  await main();
}
