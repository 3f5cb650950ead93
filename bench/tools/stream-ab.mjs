#!/usr/bin/env node
/**
 * A/B of W1 (1 KiB data messages streamed over one mutual-TLS stream, the
 * bench's own server and client workers), or of W2 with `STREAM_AB_SIZE=64`
 * (64 B messages), between trees or stacks: CPU per
 * message of the client and of the server, msgs/s, and the median per-round
 * ratio to the first variant. On a loaded machine far steadier than two W1
 * cells run minutes apart (issue 12).
 *
 *   node bench/tools/stream-ab.mjs [rounds] [seconds] name=TREE:STACK ...
 *   node bench/tools/stream-ab.mjs 30 0.5 old=/tmp/old-tree:gossip new=.:gossip raw=.:raw
 *   STREAM_AB_SIZE=64 node bench/tools/stream-ab.mjs 14 0.5 old=/tmp/old-tree:gossip new=.:gossip   # W2
 *
 * A variant is a tree (a checkout with node_modules) and a bench stack
 * (`gossip`, `raw`, `grpc`, ...). Each tree's workers are bundled with
 * esbuild into its `bench/.build/ab/` (git-ignored). Every variant gets its
 * own server (`sink`) and client worker, all started together and idle while
 * another variant runs; rounds run each variant for `seconds` (defaults 20
 * and 1), in reverse order every other round. Environment: `STREAM_AB_SIZE`
 * (bytes per message, 1024), `STREAM_AB_PROF=DIR` (CPU profiles of every
 * worker into DIR).
 */
import { fork } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { bundleWorkers, hostWorker } from "../worker-host.mjs";

const args = process.argv.slice(2);
const rounds = Number(args[0] ?? 20);
const seconds = Number(args[1] ?? 1);
const size = Number(process.env.STREAM_AB_SIZE ?? 1024);
const variants = args.slice(2).map((s) => {
  const [name, rest = ""] = s.split("=");
  const [tree = ".", stack = "gossip"] = rest.split(":");
  return { name, tree: path.resolve(tree), stack, runs: [] };
});
if (variants.length === 0 || !Number.isFinite(rounds) || !Number.isFinite(seconds)) {
  console.error("usage: node bench/tools/stream-ab.mjs [rounds] [seconds] name=TREE:STACK ...");
  process.exit(2);
}

const esbuild = await import("esbuild");
const builds = new Map();
for (const v of variants) {
  if (builds.has(v.tree)) continue;
  const outdir = path.join(v.tree, "bench", ".build", "ab");
  await bundleWorkers(esbuild, v.tree, outdir);
  builds.set(v.tree, outdir);
}
const lib = await import(pathToFileURL(path.join(builds.get(variants[0].tree), "lib.mjs")).href);
const ca = lib.makeCa();

const children = new Set();
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});

/** A bench worker (see bench/workers/common/ipc.ts) of `stack` and `role`, bundled from `tree`. */
function worker(tree, stack, role, opts) {
  const env = { ...process.env, BENCH_INIT: JSON.stringify({ stack, role, tls: true, ca, opts }) };
  const prof = process.env.STREAM_AB_PROF;
  const execArgv = ["--no-deprecation", ...(prof ? ["--cpu-prof", `--cpu-prof-dir=${prof}`, "--cpu-prof-interval=100"] : [])];
  const child = fork(path.join(builds.get(tree), "worker.mjs"), [], {
    cwd: tree,
    env,
    execArgv,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  children.add(child);
  child.on("exit", () => children.delete(child));
  return hostWorker(child, `${stack} ${role}`);
}

for (const v of variants) {
  v.server = worker(v.tree, v.stack, "server", { mode: "sink" });
  v.client = worker(v.tree, v.stack, "client", {});
}
for (const v of variants) {
  const info = await v.server.ready;
  await v.client.ready;
  await v.client.call("connect", { endpoint: info.endpoint, pkiId: info.pkiId ?? "" });
  await v.client.call("stream", { size, seconds: 1 }); // warm-up
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const load0 = os.loadavg()[0];
for (let r = 0; r < rounds; r++) {
  for (const v of r % 2 ? [...variants].reverse() : variants) {
    const s0 = await v.server.call("cpu");
    const res = await v.client.call("stream", { size, seconds });
    const s1 = await v.server.call("cpu");
    v.runs.push({
      rate: (res.count / res.ms) * 1000,
      client: res.cpuUs / res.count,
      server: (s1.user + s1.system - (s0.user + s0.system)) / res.count,
    });
  }
  const last = variants.map((v) => {
    const x = v.runs.at(-1);
    return `${v.name} ${x.client.toFixed(2)}/${x.server.toFixed(2)} us ${Math.round(x.rate)}/s`;
  });
  process.stderr.write(`round ${r + 1}/${rounds}: ${last.join(" | ")}\n`);
}
console.log(
  `${size === 64 ? "W2" : size === 1024 ? "W1" : "stream"} A/B: ${rounds} rounds x ${seconds} s, ${size} B messages, load ${load0.toFixed(1)} -> ${os.loadavg()[0].toFixed(1)}; medians (client/server CPU us per message, msgs/s), and of per-round ratios to ${variants[0].name}`,
);
const first = variants[0];
for (const v of variants) {
  const m = (k) => median(v.runs.map((x) => x[k]));
  const ratio = (k) => median(v.runs.map((x, i) => x[k] / first.runs[i][k])).toFixed(3);
  console.log(
    `${v.name.padEnd(10)} client ${m("client").toFixed(3)}  server ${m("server").toFixed(3)}  ${Math.round(m("rate"))} msgs/s   ratios: client ${ratio("client")} server ${ratio("server")} msgs/s ${ratio("rate")}`,
  );
}
await Promise.all(variants.flatMap((v) => [v.server.stop(), v.client.stop()]));
