/**
 * A/B of W4's Ping between trees or stacks: CPU per Ping of the server and
 * of the client, each in its own process (as in W4), at 32 in flight. A
 * variant is `bundle:client:server`, client and server each `raw` (W4's stack
 * a) or `gossip` (stack c); the bundle is this file bundled from the tree to
 * measure, so that two trees can be compared in one run (a kind
 * `raw+app` or `gossip+app`, for the client or the server, adds an idle gossip
 * app to that process):
 *
 *   npx esbuild bench/tools/ping-ab.ts --bundle --platform=node --format=esm \
 *     --packages=external --outfile=tmp-bench/ping-ab.mjs      (in each tree)
 *   node tmp-bench/ping-ab.mjs [rounds] A/tmp-bench/ping-ab.mjs:raw:raw \
 *     B/tmp-bench/ping-ab.mjs:gossip:gossip A/tmp-bench/ping-ab.mjs:gossip:gossip
 *
 * Rounds of 5,000 Pings alternate between the variants (order reversed every
 * other round); it prints medians and the median per-round ratio to the first
 * variant, which on a loaded machine is far steadier than Pings/s. Keep the
 * bundle inside the tree (its packages are resolved from there).
 */
import { type ChildProcess, fork } from "node:child_process";
import * as http2 from "node:http2";
import { GossipClient } from "../../src/client/gossip-client.js";
import { createCa, issueCertificate } from "../../src/pki/index.js";
import { ping as rawPing } from "../workers/stacks/raw.js";
import { benchApp, rawPingServer } from "./ping-servers.js";

const COUNT = 5000;
const INFLIGHT = 32;

interface Material {
  ca: string;
  caKey: string;
  server: { cert: string; key: string };
  client: { cert: string; key: string };
}

/** Role `server`: W4's raw server (bench/workers/stacks/raw.ts) or a gossip-connect app at the bench's options; reports its port, then its CPU on request. */
async function serve(serverKind: string, m: Material): Promise<number> {
  const [kind, extra] = serverKind.split("+");
  if (extra === "app") await idleApp(m, "ping-server-app");
  else if (extra !== undefined) throw new Error(`unknown server kind ${serverKind}`);
  if (kind === "raw") return (await rawPingServer({ cert: m.server.cert, key: m.server.key, ca: m.ca })).port;
  const app = await benchApp({ certPem: m.ca, keyPem: m.caKey }, "ping-server", { connTimeoutMs: 15_000 });
  await app.listen({ host: "127.0.0.1", port: 0 });
  return (app.server.address() as { port: number }).port;
}

/** Objects kept alive for the whole run (an idle app). */
const keep: unknown[] = [];

/**
 * Kind `+app`: a whole idle gossip app (Fastify server + Comm, as
 * `createGossipServer` builds it; not listening, its `accept()` read) in the
 * Ping client's process, as the bench's gossip client worker hosted before
 * it built its app lazily (bench/README.md, W4), or in the server's, beside
 * its Ping server.
 */
async function idleApp(m: Material, commonName: string): Promise<void> {
  const app = await benchApp({ certPem: m.ca, keyPem: m.caKey }, commonName, {
    maxHandshakesPerSecondPerAddress: 1_000_000,
    maxUnauthenticatedStreams: 4096,
    overflowPolicy: "block",
  });
  await app.ready();
  keep.push(app);
  void (async () => {
    for await (const _ of app.gossip.accept()) {
      // an idle peer: nothing arrives
    }
  })();
}

/**
 * Role `client`: W4's raw client or `GossipClient.ping()` (kind `raw` or
 * `gossip`, either with `+app`: see idleApp); runs `COUNT` Pings on request
 * and reports its CPU per Ping and the rate.
 */
async function pinger(clientKind: string, m: Material, endpoint: string): Promise<() => Promise<void>> {
  const [kind, extra] = clientKind.split("+");
  if (extra === "app") await idleApp(m, "ping-client-app");
  else if (extra !== undefined) throw new Error(`unknown client kind ${clientKind}`);
  if (kind === "raw") {
    const session = http2.connect(`https://${endpoint}`, { ca: m.ca, cert: m.client.cert, key: m.client.key });
    session.on("error", () => {});
    await new Promise((r) => session.once("connect", r));
    return () => rawPing(session);
  }
  const c = await GossipClient.connect(endpoint, { tls: { ca: m.ca, cert: m.client.cert, key: m.client.key } });
  return () => c.ping();
}

function child(): void {
  process.once("message", async (x: { role: string; kind: string; m: Material; endpoint?: string }) => {
    if (x.role === "server") {
      const port = await serve(x.kind, x.m);
      process.on("message", () => {
        const u = process.cpuUsage();
        process.send?.({ cpu: u.user + u.system });
      });
      process.send?.({ port });
      return;
    }
    const fn = await pinger(x.kind, x.m, x.endpoint ?? "");
    process.on("message", async () => {
      let started = 0;
      const lane = async () => {
        while (started < COUNT) {
          started++;
          await fn();
        }
      };
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await Promise.all(Array.from({ length: INFLIGHT }, lane));
      const ms = performance.now() - t0;
      const c = process.cpuUsage(c0);
      process.send?.({ us: (c.user + c.system) / COUNT, rate: (COUNT / ms) * 1000 });
    });
    process.send?.({ ready: true });
  });
  process.on("disconnect", () => process.exit(0));
}

interface Variant {
  label: string;
  server: ChildProcess;
  client: ChildProcess;
  s: number[];
  c: number[];
  r: number[];
}

const ask = <T>(p: ChildProcess, msg: object) =>
  new Promise<T>((resolve) => {
    p.once("message", (x) => resolve(x as T));
    p.send(msg);
  });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

async function main(args: string[]): Promise<void> {
  const rounds = Number(args.find((a) => /^\d+$/.test(a)) ?? 10);
  const ca = createCa({ commonName: "ca.ping-ab" });
  const server = issueCertificate(ca, { commonName: "server", usage: "server", altNames: ["127.0.0.1"] });
  const client = issueCertificate(ca, { commonName: "client", usage: "client" });
  const m: Material = {
    ca: ca.certPem,
    caKey: ca.keyPem,
    server: { cert: server.certPem, key: server.keyPem },
    client: { cert: client.certPem, key: client.keyPem },
  };
  const variants: Variant[] = [];
  for (const label of args.filter((a) => !/^\d+$/.test(a))) {
    const [file = "", clientKind = "gossip", serverKind = "gossip"] = label.split(":");
    const s = fork(file, ["--child"]);
    const { port } = await ask<{ port: number }>(s, { role: "server", kind: serverKind, m });
    const c = fork(file, ["--child"]);
    await ask(c, { role: "client", kind: clientKind, m, endpoint: `127.0.0.1:${port}` });
    variants.push({ label, server: s, client: c, s: [], c: [], r: [] });
  }
  const round = async (v: Variant) => {
    const s0 = (await ask<{ cpu: number }>(v.server, {})).cpu;
    const x = await ask<{ us: number; rate: number }>(v.client, {});
    const s1 = (await ask<{ cpu: number }>(v.server, {})).cpu;
    return { s: (s1 - s0) / COUNT, c: x.us, r: x.rate };
  };
  for (const v of variants) await round(v); // warm-up
  for (let i = 0; i < rounds; i++) {
    for (const v of i % 2 ? [...variants].reverse() : variants) {
      const x = await round(v);
      v.s.push(x.s);
      v.c.push(x.c);
      v.r.push(x.r);
    }
  }
  const base = variants[0] as Variant;
  const ratio = (xs: number[], of: number[]) => median(xs.map((x, i) => x / (of[i] as number))).toFixed(3);
  for (const v of variants) {
    console.log(
      `${v.label}: server ${median(v.s).toFixed(1)} us/ping (x${ratio(v.s, base.s)}), client ${median(v.c).toFixed(1)} us/ping (x${ratio(v.c, base.c)}), ` +
        `${median(v.r).toFixed(0)} Pings/s (x${ratio(v.r, base.r)})`,
    );
  }
  for (const v of variants) {
    v.server.disconnect();
    v.client.disconnect();
  }
}

if (process.argv.includes("--child")) child();
else await main(process.argv.slice(2));
