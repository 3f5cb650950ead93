/**
 * Where the memory of idle authenticated connections goes (issue 12.3).
 *
 *   node --expose-gc --import tsx bench/tools/idle-memory.ts [N] [--snapshot]
 *
 * A hub (a gossip server with mutual TLS, as W7's) takes N idle connections
 * from N peers in a child process (each its own identity, one `send` each).
 * It prints RSS, heap and external memory per connection on the hub after a
 * full GC. With --snapshot it also writes heap snapshots before and after and
 * prints what grew, by constructor name (self sizes, count per connection).
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
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
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

/** The raw baseline: node:http2 with the same mutual TLS, one open gRPC-style stream per connection. */
async function rawHub(
  m: ReturnType<typeof createPeerMaterial>,
  ca: { certPem: string },
): Promise<{ port: number; count: () => number; close: () => Promise<void> }> {
  const server = http2.createSecureServer({
    key: m.tlsServer.keyPem,
    cert: m.tlsServer.certPem,
    ca: [ca.certPem],
    requestCert: true,
    rejectUnauthorized: true,
  });
  let streams = 0;
  server.on("stream", (stream) => {
    streams++;
    stream.respond({ ":status": 200, "content-type": "application/grpc" });
    stream.on("data", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { port: (server.address() as { port: number }).port, count: () => streams, close: async () => void server.close() };
}

async function hub(n: number, snapshot: boolean, raw: boolean): Promise<void> {
  const ca = createCa({ commonName: "ca.org1", organization: mspId });
  const m = createPeerMaterial({ mspId, ca });
  if (raw) {
    const h = await rawHub(m, ca);
    return measure(n, snapshot, h.port, ca, true, h.count, h.close);
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
    false,
    () => app.gossip.connections().length,
    () => app.close(),
  );
}

async function measure(
  n: number,
  snapshot: boolean,
  port: number,
  ca: { certPem: string; keyPem: string },
  raw: boolean,
  count: () => number,
  close: () => Promise<void>,
): Promise<void> {
  const child = fork(fileURLToPath(import.meta.url), [raw ? "--raw-remotes" : "--remotes", String(n)], {
    execArgv: import.meta.url.endsWith(".ts") ? ["--import", "tsx"] : [],
    stdio: "inherit",
  });
  child.send({ endpoint: `127.0.0.1:${port}`, ca: { certPem: ca.certPem, keyPem: ca.keyPem } });
  await sleep(500);
  gc();
  await sleep(200);
  const dir = path.dirname(fileURLToPath(import.meta.url));
  const before = process.memoryUsage();
  const snapBefore = snapshot ? v8.writeHeapSnapshot(path.join(dir, "..", ".build", "idle-before.heapsnapshot")) : "";
  child.send({ go: true });
  const t0 = Date.now();
  while (count() < n && Date.now() - t0 < 120_000) {
    await sleep(50);
    if (process.env.DEBUG) console.log("connections", count());
  }
  await sleep(1000);
  gc();
  await sleep(200);
  const after = process.memoryUsage();
  const per = (k: keyof NodeJS.MemoryUsage) => Math.round((after[k] - before[k]) / n);
  console.log(
    `${raw ? "raw " : ""}hub: ${count()} connections; per connection: rss ${per("rss")} B, heapUsed ${per("heapUsed")} B, external ${per("external")} B, arrayBuffers ${per("arrayBuffers")} B`,
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
  }
  child.kill();
  await close();
}

async function rawRemotes(n: number): Promise<void> {
  const init = await receive<{ endpoint: string; ca: { certPem: string; keyPem: string } }>();
  const ca = loadCa(init.ca.certPem, init.ca.keyPem);
  const ms = Array.from({ length: n }, () => createPeerMaterial({ mspId, ca }));
  await receive();
  const keep: unknown[] = [];
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
else if (args[0] === "--raw-remotes") await rawRemotes(Number(args[1]));
else await hub(Number(args.find((a) => /^\d+$/.test(a)) ?? 200), args.includes("--snapshot"), args.includes("--raw"));
