/**
 * What one simulated W9 peer costs once, whatever the number of peers it
 * knows: the heap by owning object (class and field) per peer, for peers
 * that know nobody (`--bare`) and for a converged world.
 *
 * Run it compiled, not under tsx: tsx transforms with esbuild's keepNames
 * (every named closure instance then gets its own `name` property, ~13.5 KB
 * more per peer, which the bench's bundle does not have) and minifies
 * whitespace (every source line is 1):
 *
 *   npx tsc -p tsconfig.json --noEmit false --outDir .tmp/tsc
 *   node --expose-gc .tmp/tsc/bench/tools/w9-once.js N OUT [--bare] [--x509]
 *   node .tmp/tsc/bench/tools/w9-once.js --compare OUT_A.json OUT_B.json
 *
 * A run builds the world of bench/workers/membership/sim.ts with the fake
 * crypto, or with `--x509` Fabric's X.509 identities issued by one CA, as
 * the cell's x509 variant (same seed, three seeds, bootstrap, options and warm-up: 2 passes of
 * 10 peers), takes the warm heap snapshot, starts N peers, converges them
 * and runs 1 + 2 alive intervals (the cell's window: heap per known peer is
 * that of W9's `memory`). With `--bare` the peers get no bootstrap peers:
 * each knows nobody, so all it holds is what a peer costs once. After a full
 * GC it writes OUT.json: heap used and array buffers gained since the warm
 * baseline, and the objects new since the warm snapshot, by owner: each is
 * charged to the nearest object of a src class (not Object, Array, Map,
 * Promise...) on its shortest path from the GC roots, as "Class.field" (the
 * field of that class it hangs from). `--compare` prints both runs' bytes
 * and objects per peer by owner, largest in B first: owners that are the same
 * size in a bare and a converged run are costs once a peer. Native nodes
 * (array buffers' contents, Node's C++ objects: outside `heapUsed`, which
 * the goal counts) are charged the same way under the owner's name with
 * " [native]" after it.
 *
 * With `W9_DETAIL=<regexp>` in the environment, the objects of owners whose
 * name matches are split by their own type and name ("owner :: type:name"):
 * what an owner's bytes are made of.
 *
 * Charging by shortest path is a heuristic: an object that two owners reach
 * goes to the one nearer the roots (timers' closures often go to the clock).
 */
import { readFileSync, unlinkSync, writeFileSync } from "node:fs";
import v8 from "node:v8";
import { type CryptoService, X509CryptoService } from "../../src/core/index.js";
import { createCa, createPeerMaterial } from "../../src/pki/index.js";
import { BenchFakeCrypto } from "../workers/membership/fake-crypto.js";
import { makeWorld, populate, type World } from "../workers/membership/sim.js";

const aliveMs = 5000;
const mspId = "Org1MSP";

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (!g) throw new Error("run with --expose-gc");
  g();
  g();
}

const x509 = process.argv.includes("--x509");
const ca = x509 ? createCa({ commonName: "ca.org1msp", organization: mspId }) : undefined;

/** The cell's crypto: W9's fake one, or with `--x509` Fabric's X.509 identities from one CA (as sim.ts's x509 cells). */
function cryptoFor(name: string): CryptoService {
  if (ca === undefined) return new BenchFakeCrypto(mspId);
  const m = createPeerMaterial({ mspId, ca, commonName: name });
  return new X509CryptoService({
    mspId,
    certificate: m.identity.certPem,
    privateKey: m.identity.keyPem,
    trustedRoots: { [mspId]: [ca.certPem] },
  });
}

/** The W9 cell's world (sim.ts), populated and converged as the memory cell does; `bare`: no bootstrap peers. */
async function world(size: number, bare: boolean): Promise<World> {
  const w = makeWorld(size, { seed: 9, maxRealMs: 120_000, maxUnauthenticatedStreams: 4096, bare });
  await populate(
    w,
    Array.from({ length: size }, (_, i) => cryptoFor(`peer${i}`)),
  );
  if (!bare) await w.advanceUntil(() => w.converged(), 12 * aliveMs, 250);
  return w;
}

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

/** Built-in constructors: never an owner, the search goes on up. */
const generic = new Set([
  "Object",
  "Array",
  "Map",
  "Set",
  "WeakMap",
  "WeakSet",
  "Promise",
  "Generator",
  "Uint8Array",
  "ArrayBuffer",
  "Buffer",
  "EventTarget",
  "AbortController",
  "AbortSignal",
  "Listener",
  "Timeout",
  "Error",
]);

/** Owners split by their objects' type and name (`W9_DETAIL`, see the module comment). */
const detail = process.env.W9_DETAIL ? new RegExp(process.env.W9_DETAIL) : undefined;

/** Bytes and objects new in `after` (ids not in `before`) by owner "Class.field" (see the module comment). */
function byOwner(before: Snapshot, after: Snapshot): Record<string, [number, number]> {
  const f = after.snapshot.meta.node_fields;
  const w = f.length;
  const iType = f.indexOf("type");
  const iName = f.indexOf("name");
  const iSize = f.indexOf("self_size");
  const iId = f.indexOf("id");
  const iEdges = f.indexOf("edge_count");
  const old = new Set<number>();
  for (let i = 0; i < before.nodes.length; i += w) old.add(before.nodes[i + iId] as number);
  const s = after;
  const types = s.snapshot.meta.node_types[0];
  const edgeTypes = s.snapshot.meta.edge_types[0];
  const ew = s.snapshot.meta.edge_fields.length;
  const n = s.nodes.length / w;
  const typeOf = (node: number) => types[s.nodes[node * w + iType] as number] as string;
  const nameOf = (node: number) => s.strings[s.nodes[node * w + iName] as number] as string;
  const label = (node: number) => `${typeOf(node)}:${typeOf(node).includes("string") ? "(str)" : nameOf(node).slice(0, 40)}`;
  const isOwner = (node: number) =>
    typeOf(node) === "object" && /^[A-Z]/.test(nameOf(node)) && !generic.has(nameOf(node)) && !nameOf(node).startsWith("system");
  // Shortest-path tree from the root (node 0), strong edges only.
  const parent = new Int32Array(n).fill(-1);
  const via: string[] = new Array(n);
  parent[0] = 0;
  const queue = [0];
  const firstEdge = new Int32Array(n + 1);
  for (let node = 0, e = 0; node < n; node++) {
    firstEdge[node] = e;
    e += (s.nodes[node * w + iEdges] as number) * ew;
  }
  firstEdge[n] = s.edges.length;
  for (let h = 0; h < queue.length; h++) {
    const node = queue[h] as number;
    for (let e = firstEdge[node] as number; e < (firstEdge[node + 1] as number); e += ew) {
      const et = edgeTypes[s.edges[e] as number] as string;
      if (et === "weak" || et === "shortcut") continue;
      const to = (s.edges[e + 2] as number) / w;
      if (parent[to] !== -1) continue;
      parent[to] = node;
      const name = s.edges[e + 1] as number;
      via[to] = et === "element" || et === "hidden" ? "[]" : (s.strings[name] ?? String(name));
      queue.push(to);
    }
  }
  const out: Record<string, [number, number]> = {};
  for (let node = 0; node < n; node++) {
    if (old.has(s.nodes[node * w + iId] as number) || parent[node] === -1) continue;
    let cur = node;
    let below = -1;
    for (let steps = 0; cur !== 0 && !isOwner(cur) && steps < 30; steps++) {
      below = cur;
      cur = parent[cur] as number;
    }
    let key: string;
    if (cur !== 0 && isOwner(cur)) key = `${nameOf(cur)}.${below === -1 ? "(self)" : via[below]}`;
    else {
      key = `(no owner) ${label(node)}`;
      for (let c = node, d = 0; d < 2 && parent[c] !== 0; d++, c = parent[c] as number)
        key += ` <- ${label(parent[c] as number)}.${via[c]}`;
    }
    // Native nodes (array buffers' contents, Node's C++ objects) are outside heapUsed: marked so.
    if (typeOf(node) === "native") key += " [native]";
    if (detail?.test(key)) key += ` :: ${label(node)}`;
    const e = out[key] ?? [0, 0];
    e[0] += s.nodes[node * w + iSize] as number;
    e[1]++;
    out[key] = e;
  }
  return out;
}

async function run(n: number, prefix: string, bare: boolean): Promise<void> {
  for (let i = 0; i < 2; i++) await (await world(10, false)).stop();
  gc();
  const beforeFile = v8.writeHeapSnapshot(`${prefix}-before.heapsnapshot`);
  gc();
  const m0 = process.memoryUsage();
  const w = await world(n, bare);
  for (let i = 0; i < 3; i++) await w.clock.advance(aliveMs);
  gc();
  const m1 = process.memoryUsage();
  const afterFile = v8.writeHeapSnapshot(`${prefix}-after.heapsnapshot`);
  const known = w.peers.reduce((s, p) => s + p.membership.stats().alive + p.membership.stats().dead, 0);
  const read = (file: string) => JSON.parse(readFileSync(file, "utf8")) as Snapshot;
  const owners = byOwner(read(beforeFile), read(afterFile));
  unlinkSync(beforeFile);
  unlinkSync(afterFile);
  const heapDelta = m1.heapUsed - m0.heapUsed;
  writeFileSync(
    `${prefix}.json`,
    JSON.stringify({ n, bare, known, heapDelta, arrayBuffersDelta: m1.arrayBuffers - m0.arrayBuffers, owners }),
  );
  const perKnown = known > 0 ? `, ${Math.round(heapDelta / known)} B per known peer` : "";
  console.log(
    `${n} peers${bare ? " (bare)" : ""}: heap +${heapDelta} B, ${Math.round(heapDelta / n)} B per peer${perKnown} -> ${prefix}.json`,
  );
}

interface Result {
  n: number;
  bare: boolean;
  known: number;
  heapDelta: number;
  owners: Record<string, [number, number]>;
}

function compare(fileA: string, fileB: string, top: number): void {
  const [a, b] = [fileA, fileB].map((f) => JSON.parse(readFileSync(f, "utf8")) as Result) as [Result, Result];
  const name = (r: Result) => `${r.n}${r.bare ? " bare" : ""}`;
  console.log(`heap per peer: ${Math.round(a.heapDelta / a.n)} B (${name(a)}), ${Math.round(b.heapDelta / b.n)} B (${name(b)})`);
  const keys = new Set([...Object.keys(a.owners), ...Object.keys(b.owners)]);
  const per = (r: Result, k: string, i: 0 | 1) => (r.owners[k]?.[i] ?? 0) / r.n;
  const rows = [...keys].sort((x, y) => per(b, y, 0) - per(b, x, 0));
  console.log(`${"B/peer A".padStart(9)} ${"B/peer B".padStart(9)} ${"obj/pr B".padStart(9)}  owner`);
  for (const k of rows.slice(0, top))
    console.log(
      `${per(a, k, 0).toFixed(0).padStart(9)} ${per(b, k, 0).toFixed(0).padStart(9)} ${per(b, k, 1).toFixed(1).padStart(9)}  ${k.slice(0, 120)}`,
    );
}

const args = process.argv.slice(2);
if (args[0] === "--compare") compare(args[1] as string, args[2] as string, Number(args[3] ?? 60));
else {
  const n = Number(args[0] ?? 20);
  if (!Number.isInteger(n) || n < 1 || n > 300) throw new Error("N: 1 to 300 peers (heap snapshots of more are slow to parse)");
  await run(n, args[1] ?? `.tmp/w9-once-${n}`, args.includes("--bare"));
  process.exit(0);
}
