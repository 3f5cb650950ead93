/**
 * Where the memory of idle authenticated connections goes (issue 12.3).
 *
 *   node --expose-gc --import tsx bench/tools/idle-memory.ts [N] [--snapshot] [--raw | --raw-hs]
 *
 * A hub (a gossip server with mutual TLS, as W7's) takes N idle connections
 * from N peers in a child process (each its own identity, one `send` each).
 * It prints RSS, heap and external memory per connection on the hub after a
 * full GC. With --snapshot it also writes heap snapshots before and after and
 * prints what grew, by constructor name (self sizes, count per connection).
 * --raw measures a bare node:http2 hub with the same mutual TLS instead;
 * --raw-hs that hub plus Fabric's handshake on every connection (W7's floor,
 * bench stack a+hs: a Ping, then the GossipStream with gossip-connect's own
 * handshake; see bench/workers/stacks/raw-handshake.ts).
 */
import { fork } from "node:child_process";
import { readFileSync } from "node:fs";
import * as http2 from "node:http2";
import path from "node:path";
import { fileURLToPath } from "node:url";
import v8 from "node:v8";
import { PeerDialer } from "../../src/client/dialer.js";
import { Comm } from "../../src/core/comm.js";
import { gossipMessage } from "../../src/core/envelope.js";
import { X509CryptoService } from "../../src/core/x509-crypto.js";
import { createCa, createPeerMaterial, loadCa } from "../../src/pki/certificates.js";
import { createGossipServer } from "../../src/server/create-server.js";
import { answerPing, ping } from "../workers/stacks/raw.js";
import { AuthenticatedPeers, FabricHandshaker } from "../workers/stacks/raw-handshake.js";

const options = {
  maxHandshakesPerSecondPerAddress: 1_000_000,
  maxUnauthenticatedStreams: 4096,
  dialTimeoutMs: 15_000,
  connTimeoutMs: 15_000,
};
const mspId = "Org1MSP";

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (!g) throw new Error("run with --expose-gc");
  for (let i = 0; i < 4; i++) g();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Quiet time before each measurement (SETTLE_MS). */
const settleMs = Number(process.env.SETTLE_MS ?? 1000);

/** Size of V8's young generation. */
function youngBytes(): number {
  return v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space")?.space_size ?? 0;
}

/** Messages from the parent, in order, none lost while the child is busy. */
const inbox: unknown[] = [];
let inboxWaiter: (() => void) | undefined;
if (process.send) {
  process.on("message", (m) => {
    inbox.push(m);
    inboxWaiter?.();
  });
}
async function receive<T>(): Promise<T> {
  while (inbox.length === 0) await new Promise<void>((r) => (inboxWaiter = r));
  return inbox.shift() as T;
}

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]]; location_fields: string[] } };
  nodes: number[];
  strings: string[];
  locations: number[];
}

/** Script URLs by id, from the inspector, to name where closures were created. */
const scripts = new Map<string, string>();
async function watchScripts(): Promise<void> {
  const inspector = await import("node:inspector");
  const session = new inspector.Session();
  session.connect();
  session.on("Debugger.scriptParsed", (m) => scripts.set(m.params.scriptId, m.params.url));
  await new Promise<void>((resolve) => session.post("Debugger.enable", () => resolve()));
}

/**
 * New objects (in `after`, not in `before`) of the given "type:name" kinds,
 * counted by their first retainer's "type:name" and the edge name: what
 * holds the plain objects, backing stores and promises a connection adds.
 */
function newByRetainer(beforeFile: string, afterFile: string, kinds: ReadonlySet<string>): Map<string, number> {
  const b = JSON.parse(readFileSync(beforeFile, "utf8")) as Snapshot;
  const f = b.snapshot.meta.node_fields;
  const w = f.length;
  const iId = f.indexOf("id");
  const old = new Set<number>();
  for (let i = 0; i < b.nodes.length; i += w) old.add(b.nodes[i + iId] as number);
  const s = JSON.parse(readFileSync(afterFile, "utf8")) as Snapshot & {
    edges: number[];
    snapshot: { meta: { edge_fields: string[]; edge_types: [string[]] } };
  };
  const types = s.snapshot.meta.node_types[0];
  const iType = f.indexOf("type");
  const iName = f.indexOf("name");
  const iEdges = f.indexOf("edge_count");
  const ef = s.snapshot.meta.edge_fields;
  const ew = ef.length;
  const eType = ef.indexOf("type");
  const eName = ef.indexOf("name_or_index");
  const eTo = ef.indexOf("to_node");
  const edgeTypes = s.snapshot.meta.edge_types[0];
  const label = (node: number) => {
    const type = types[s.nodes[node + iType] as number] as string;
    const name = s.strings[s.nodes[node + iName] as number] as string;
    return `${type}:${name.length > 40 ? `${name.slice(0, 37)}...` : name}`;
  };
  const out = new Map<string, number>();
  const seen = new Set<number>();
  let edge = 0;
  for (let node = 0; node < s.nodes.length; node += w) {
    const count = s.nodes[node + iEdges] as number;
    for (let e = 0; e < count; e++, edge += ew) {
      const to = s.edges[edge + eTo] as number;
      const edgeType = edgeTypes[s.edges[edge + eType] as number] as string;
      if (edgeType === "weak" || seen.has(to) || old.has(s.nodes[to + iId] as number)) continue;
      const kind = label(to);
      if (!kinds.has(kind)) continue;
      seen.add(to);
      const n = s.edges[edge + eName] as number;
      const edgeName = edgeType === "element" || edgeType === "hidden" ? `[${n}]` : (s.strings[n] as string);
      const key = `${kind}  <-  ${label(node)} .${edgeName}`;
      out.set(key, (out.get(key) ?? 0) + 1);
    }
  }
  return out;
}

/** Closures in `after` that are not in `before` (by node id), counted by source location. */
function newClosures(beforeFile: string, afterFile: string): Map<string, number> {
  const ids = (s: Snapshot) => {
    const f = s.snapshot.meta.node_fields;
    const w = f.length;
    const iId = f.indexOf("id");
    const set = new Set<number>();
    for (let i = 0; i < s.nodes.length; i += w) set.add(s.nodes[i + iId] as number);
    return set;
  };
  const old = ids(JSON.parse(readFileSync(beforeFile, "utf8")) as Snapshot);
  const s = JSON.parse(readFileSync(afterFile, "utf8")) as Snapshot;
  const f = s.snapshot.meta.node_fields;
  const iId = f.indexOf("id");
  const lf = s.snapshot.meta.location_fields;
  const out = new Map<string, number>();
  for (let i = 0; i < s.locations.length; i += lf.length) {
    const node = s.locations[i + lf.indexOf("object_index")] as number;
    if (old.has(s.nodes[node + iId] as number)) continue;
    const script = String(s.locations[i + lf.indexOf("script_id")]);
    const url = (scripts.get(script) ?? script).replace(/^.*\/(node_modules\/)?/, "");
    const key = `${url}:${(s.locations[i + lf.indexOf("line")] as number) + 1}:${(s.locations[i + lf.indexOf("column")] as number) + 1}`;
    out.set(key, (out.get(key) ?? 0) + 1);
  }
  return out;
}

/** Self size and count by "type:name" over a heap snapshot. */
function bySelf(file: string): Map<string, { size: number; count: number }> {
  const s = JSON.parse(readFileSync(file, "utf8")) as Snapshot;
  const f = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const w = f.length;
  const iType = f.indexOf("type");
  const iName = f.indexOf("name");
  const iSize = f.indexOf("self_size");
  const out = new Map<string, { size: number; count: number }>();
  for (let i = 0; i < s.nodes.length; i += w) {
    const type = types[s.nodes[i + iType] as number] as string;
    let name = s.strings[s.nodes[i + iName] as number] as string;
    if (type === "string" || type === "concatenated string" || type === "sliced string") name = "(string)";
    if (name.length > 60) name = `${name.slice(0, 57)}...`;
    const key = `${type}:${name}`;
    const e = out.get(key) ?? { size: 0, count: 0 };
    e.size += s.nodes[i + iSize] as number;
    e.count++;
    out.set(key, e);
  }
  return out;
}

/**
 * The raw baseline: node:http2 with the same mutual TLS, one open gRPC-style
 * stream per connection; with `handshake`, Fabric's handshake on each stream
 * first, Pings answered (the floor, --raw-hs).
 */
async function rawHub(
  m: ReturnType<typeof createPeerMaterial>,
  ca: { certPem: string },
  handshake: boolean,
): Promise<{ port: number; count: () => number; close: () => Promise<void> }> {
  const server = http2.createSecureServer({
    key: m.tlsServer.keyPem,
    cert: m.tlsServer.certPem,
    ca: [ca.certPem],
    requestCert: true,
    rejectUnauthorized: true,
  });
  let streams = 0;
  const handshaker = handshake ? new FabricHandshaker(ca.certPem, m, mspId) : undefined;
  const peers = new AuthenticatedPeers();
  server.on("stream", (stream, headers) => {
    if (handshaker === undefined) {
      streams++;
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      stream.on("data", () => {});
      return;
    }
    stream.on("error", () => {});
    if (headers[":path"] === "/gossip.Gossip/Ping") {
      answerPing(stream);
      return;
    }
    stream.respond({ ":status": 200, "content-type": "application/grpc" });
    handshaker.run(stream, stream.session as http2.ServerHttp2Session).then(
      ({ auth }) => {
        peers.add(auth);
        stream.on("data", () => {});
      },
      () => stream.close(http2.constants.NGHTTP2_CANCEL),
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as { port: number }).port,
    count: () => (handshaker ? peers.size : streams),
    close: async () => void server.close(),
  };
}

async function hub(n: number, snapshot: boolean, raw: boolean, handshake: boolean): Promise<void> {
  const ca = createCa({ commonName: "ca.org1", organization: mspId });
  const m = createPeerMaterial({ mspId, ca });
  if (raw) {
    const h = await rawHub(m, ca, handshake);
    return measure(n, snapshot, h.port, ca, handshake ? "raw-hs" : "raw", h.count, h.close);
  }
  const app = await createGossipServer({
    identity: { mspId, certificate: m.identity.certPem, privateKey: m.identity.keyPem, trustedRoots: { [mspId]: [ca.certPem] } },
    tls: { cert: m.tlsServer.certPem, key: m.tlsServer.keyPem, ca: [ca.certPem] },
    clientTls: { ca: [ca.certPem], cert: m.tlsClient.certPem, key: m.tlsClient.keyPem },
    options: { ...options, overflowPolicy: "drop" },
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const addr = app.server.address() as { port: number };
  void (async () => {
    for await (const _ of app.gossip.accept()) {
      // idle peers say hello once
    }
  })();
  return measure(
    n,
    snapshot,
    addr.port,
    ca,
    "gossip",
    () => app.gossip.connections().length,
    () => app.close(),
  );
}

async function measure(
  n: number,
  snapshot: boolean,
  port: number,
  ca: { certPem: string; keyPem: string },
  kind: "gossip" | "raw" | "raw-hs",
  count: () => number,
  close: () => Promise<void>,
): Promise<void> {
  const child = fork(fileURLToPath(import.meta.url), [kind === "gossip" ? "--remotes" : `--${kind}-remotes`, String(n)], {
    execArgv: import.meta.url.endsWith(".ts") ? ["--import", "tsx"] : [],
    stdio: "inherit",
  });
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("remotes not ready within 300 s")), 300_000);
    child.once("message", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  child.send({ endpoint: `127.0.0.1:${port}`, ca: { certPem: ca.certPem, keyPem: ca.keyPem } });
  // The remotes first make their identities (slow on a loaded machine): the clock starts once they are ready.
  await ready;
  await sleep(settleMs);
  gc();
  await sleep(200);
  const dir = path.dirname(fileURLToPath(import.meta.url));
  const spacesBefore = v8.getHeapSpaceStatistics();
  const youngBefore = youngBytes();
  const before = process.memoryUsage();
  if (snapshot) await watchScripts();
  const snapBefore = snapshot ? v8.writeHeapSnapshot(path.join(dir, "..", ".build", "idle-before.heapsnapshot")) : "";
  child.send({ go: true });
  const t0 = Date.now();
  while (count() < n && Date.now() - t0 < 300_000) {
    await sleep(50);
    if (process.env.DEBUG) console.log("connections", count());
  }
  await sleep(settleMs);
  gc();
  await sleep(200);
  const after = process.memoryUsage();
  const per = (k: keyof NodeJS.MemoryUsage) => Math.round((after[k] - before[k]) / n);
  const spacesAfter = v8.getHeapSpaceStatistics();
  console.log(
    `heap spaces, size (used) growth per connection: ${spacesAfter
      .map((a) => {
        const b = spacesBefore.find((x) => x.space_name === a.space_name);
        const grew = (k: "space_size" | "space_used_size") => Math.round((a[k] - (b?.[k] ?? 0)) / n);
        return `${a.space_name} ${grew("space_size")} (${grew("space_used_size")})`;
      })
      .join(", ")}`,
  );
  // V8 sizes its young generation to the recent allocation rate (up to
  // 32 MiB after a burst of handshakes) and gives it back only in a later
  // quiet GC: RSS without its growth is what the connections hold.
  const young = youngBytes() - youngBefore;
  console.log(`young generation growth ${young} B; rss per connection without it: ${Math.round((after.rss - before.rss - young) / n)} B`);
  if (count() < n) console.log(`only ${count()} of ${n} connections within 300 s: the figures below are not per connection`);
  console.log(
    `${kind === "gossip" ? "" : `${kind} `}hub: ${count()} connections; per connection: rss ${per("rss")} B, heapUsed ${per("heapUsed")} B, heapTotal ${per("heapTotal")} B, external ${per("external")} B, arrayBuffers ${per("arrayBuffers")} B`,
  );
  if (snapshot) {
    const snapAfter = v8.writeHeapSnapshot(path.join(dir, "..", ".build", "idle-after.heapsnapshot"));
    const a = bySelf(snapBefore);
    const b = bySelf(snapAfter);
    const rows = [...b].map(([k, v]) => ({ k, size: v.size - (a.get(k)?.size ?? 0), count: v.count - (a.get(k)?.count ?? 0) }));
    rows.sort((x, y) => y.size - x.size);
    let total = 0;
    for (const r of rows) total += r.size;
    console.log(
      `heap snapshot growth: ${Math.round(total / n)} B per connection; top by self size (B per connection, objects per connection):`,
    );
    for (const r of rows.slice(0, Number(process.env.TOP ?? 45)))
      console.log(`${String(Math.round(r.size / n)).padStart(7)}  ${(r.count / n).toFixed(1).padStart(6)}  ${r.k}`);
    const got = count();
    const located = [...newClosures(snapBefore, snapAfter)].filter(([, c]) => c >= got / 2).sort((x, y) => y[1] - x[1]);
    console.log("new functions and objects of known constructors, per connection, by source location:");
    for (const [k, c] of located) console.log(`${(c / got).toFixed(1).padStart(6)}  ${k}`);
    const kinds = new Set((process.env.RETAINED ?? "object:Object,object:Promise,closure:native_bind,object:Buffer").split(","));
    const held = [...newByRetainer(snapBefore, snapAfter, kinds)].filter(([, c]) => c >= got / 2).sort((x, y) => y[1] - x[1]);
    console.log(`new ${[...kinds].join(", ")} per connection, by first retainer:`);
    for (const [k, c] of held) console.log(`${(c / got).toFixed(1).padStart(6)}  ${k}`);
  }
  child.kill();
  await close();
}

async function rawRemotes(n: number, handshake: boolean): Promise<void> {
  const init = await receive<{ endpoint: string; ca: { certPem: string; keyPem: string } }>();
  const ca = loadCa(init.ca.certPem, init.ca.keyPem);
  const ms = Array.from({ length: n }, () => createPeerMaterial({ mspId, ca }));
  process.send?.("ready");
  await receive();
  const keep: unknown[] = [];
  if (handshake) {
    // As Fabric's createConnection: a Ping, then the GossipStream and the handshake.
    for (let i = 0; i < n; i += 20) {
      await Promise.all(
        ms.slice(i, i + 20).map(async (m) => {
          const s = http2.connect(`https://${init.endpoint}`, {
            ca: [init.ca.certPem],
            cert: m.tlsClient.certPem,
            key: m.tlsClient.keyPem,
          });
          s.on("error", () => {});
          await new Promise<void>((resolve, reject) => s.once("connect", () => resolve()).once("error", reject));
          await ping(s);
          const req = s.request({
            ":method": "POST",
            ":path": "/gossip.Gossip/GossipStream",
            "content-type": "application/grpc",
            te: "trailers",
          });
          req.on("error", () => {});
          await new FabricHandshaker(init.ca.certPem, m, mspId).run(req, s);
          keep.push(s, req);
        }),
      );
    }
    await new Promise(() => {});
  }
  for (let i = 0; i < n; i += 20) {
    await Promise.all(
      ms.slice(i, i + 20).map(
        (m) =>
          new Promise<void>((resolve) => {
            const s = http2.connect(`https://${init.endpoint}`, {
              ca: [init.ca.certPem],
              cert: m.tlsClient.certPem,
              key: m.tlsClient.keyPem,
            });
            const req = s.request({
              ":method": "POST",
              ":path": "/gossip.Gossip/GossipStream",
              "content-type": "application/grpc",
              te: "trailers",
            });
            req.write(Buffer.from([0, 0, 0, 0, 0]));
            req.once("response", () => resolve());
            keep.push(s, req);
          }),
      ),
    );
  }
  await new Promise(() => {});
}

async function remotes(n: number): Promise<void> {
  const init = await receive<{ endpoint: string; ca: { certPem: string; keyPem: string } }>();
  const ca = loadCa(init.ca.certPem, init.ca.keyPem);
  const comms: Comm[] = [];
  for (let i = 0; i < n; i++) {
    const m = createPeerMaterial({ mspId, ca });
    const identity = {
      mspId,
      certificate: m.identity.certPem,
      privateKey: m.identity.keyPem,
      trustedRoots: { [mspId]: [init.ca.certPem] },
    };
    comms.push(
      new Comm({
        crypto: new X509CryptoService(identity),
        dialer: new PeerDialer({ tls: { ca: [init.ca.certPem], cert: m.tlsClient.certPem, key: m.tlsClient.keyPem }, options }),
        options,
      }),
    );
  }
  process.send?.("ready");
  await receive();
  const hubPeer = { endpoint: init.endpoint };
  for (let i = 0; i < n; i += 20) {
    await Promise.all(
      comms.slice(i, i + 20).map((c) => c.send(gossipMessage({ nonce: 1n, content: { case: "empty", value: {} } }), hubPeer)),
    );
  }
  await new Promise(() => {});
}

const args = process.argv.slice(2);
if (args[0] === "--remotes") await remotes(Number(args[1]));
else if (args[0] === "--raw-remotes") await rawRemotes(Number(args[1]), false);
else if (args[0] === "--raw-hs-remotes") await rawRemotes(Number(args[1]), true);
else {
  const n = Number(args.find((a) => /^\d+$/.test(a)) ?? 200);
  const rawHs = args.includes("--raw-hs");
  await hub(n, args.includes("--snapshot"), rawHs || args.includes("--raw"), rawHs);
}
