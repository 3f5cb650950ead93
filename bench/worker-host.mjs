// The orchestrator's side of the bench workers (bench/workers/common/ipc.ts):
// how a tree's workers are bundled, and a worker process as an object whose
// calls are promises. One copy for `npm run bench` (run.mjs) and the A/B
// tools that run the workers of several trees side by side (tools/stream-ab.mjs).
import path from "node:path";

/**
 * Bundles `tree`'s bench workers into `outdir` (`worker.mjs`, `lib.mjs` and
 * their chunks) with `esbuild`, its dependencies left external (resolved from
 * the tree's node_modules).
 */
export function bundleWorkers(esbuild, tree, outdir) {
  return esbuild.build({
    entryPoints: { worker: path.join(tree, "bench", "workers", "main.ts"), lib: path.join(tree, "bench", "workers", "lib.ts") },
    outdir,
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    packages: "external",
    outExtension: { ".js": ".mjs" },
    chunkNames: "chunks/[name]-[hash]",
    logLevel: "warning",
    absWorkingDir: tree,
  });
}

/** `p`, or a rejection naming `what` once `ms` have passed without it settling. */
export function timeout(p, ms, what) {
  let timer;
  return Promise.race([
    p,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A started worker process `child` (forked with an IPC channel, or the Go
 * binary on the same channel) as `{ name, ready, call, stop }`. `ready`
 * resolves with what the worker announced, within `startMs`; `call(cmd,
 * args, ms)` with the worker's reply, within `ms` (default `callMs`); both,
 * and every call pending, reject when it exits. `stop()` asks it to exit,
 * waits up to `stopGraceMs`, then kills it.
 */
export function hostWorker(child, name, { startMs = 90_000, callMs = 120_000, stopGraceMs = 1500 } = {}) {
  const pending = new Map();
  let nextId = 1;
  let onReady;
  let onFail;
  const ready = new Promise((resolve, reject) => {
    onReady = resolve;
    onFail = reject;
  });
  ready.catch(() => {});
  let exited = false;
  child.on("message", (m) => {
    if (m?.t === "ready") onReady(m.info);
    else if (m?.t === "reply") {
      const p = pending.get(m.id);
      if (!p) return;
      pending.delete(m.id);
      if (m.ok) p.resolve(m.value);
      else p.reject(new Error(`${name}.${p.cmd}: ${m.error}`));
    }
  });
  child.on("exit", (code, signal) => {
    exited = true;
    const err = new Error(`worker ${name} exited (${signal ?? code})`);
    onFail(err);
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  });
  return {
    name,
    ready: timeout(ready, startMs, `${name} start`),
    call(cmd, args = {}, ms = callMs) {
      if (exited) return Promise.reject(new Error(`worker ${name} is gone`));
      const id = nextId++;
      return timeout(
        new Promise((resolve, reject) => {
          pending.set(id, { resolve, reject, cmd });
          child.send({ t: "call", id, cmd, args });
        }),
        ms,
        `${name}.${cmd}`,
      );
    },
    async stop() {
      if (exited) return;
      try {
        child.send({ t: "exit" });
      } catch {
        // channel closed
      }
      const gone = new Promise((r) => child.once("exit", r));
      await Promise.race([gone, sleep(stopGraceMs)]);
      if (!exited) child.kill("SIGKILL");
      await Promise.race([gone, sleep(1000)]);
    },
  };
}
