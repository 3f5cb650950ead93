/**
 * Parent side of peer-worker.ts: spawns worker processes (optionally inside a
 * network namespace), reads their JSON-line events, sends commands, and kills
 * every worker still alive in `killAllWorkers()` (call it from `after`).
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import type { CertificateAuthority, PeerMaterial } from "../../src/pki/certificates.js";
import type { Target, WorkerConfig, WorkerPeerConfig } from "./peer-worker.js";

const workerPath = fileURLToPath(new URL("./peer-worker.ts", import.meta.url));

/** An event a worker printed, with the parent's receive time (`at`, performance.now()). */
export type WorkerEvent = Record<string, unknown> & { ev?: string; at: number };

const alive = new Set<Worker>();

export class Worker {
  readonly events: WorkerEvent[] = [];
  stderr = "";
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitedAt: number | undefined;
  private partial = "";
  private nextId = 1;
  private waiters = new Set<() => void>();

  constructor(
    readonly name: string,
    readonly proc: ChildProcessWithoutNullStreams,
  ) {
    alive.add(this);
    proc.stdout.setEncoding("utf8");
    proc.stderr.setEncoding("utf8");
    proc.stdin.on("error", () => {});
    proc.stdout.on("data", (chunk: string) => {
      const at = performance.now();
      const parts = (this.partial + chunk).split("\n");
      this.partial = parts.pop() ?? "";
      for (const l of parts) {
        if (l.trim() === "") continue;
        try {
          this.events.push({ ...(JSON.parse(l) as Record<string, unknown>), at });
        } catch {
          this.stderr += `(stdout) ${l}\n`;
        }
      }
      this.notify();
    });
    proc.stderr.on("data", (c: string) => {
      if (this.stderr.length < 100_000) this.stderr += c;
    });
    this.exited = new Promise((resolve) =>
      proc.once("close", (code, signal) => {
        this.exitedAt = performance.now();
        alive.delete(this);
        this.notify();
        resolve({ code, signal });
      }),
    );
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  get running(): boolean {
    return this.exitedAt === undefined;
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Events named `ev` (matching `pred`) seen so far. */
  all(ev: string, pred: (e: WorkerEvent) => boolean = () => true): WorkerEvent[] {
    return this.events.filter((e) => e.ev === ev && pred(e));
  }

  /** Resolves with the first event (from index `from` on) that `pred` accepts; rejects after `ms` or on exit. */
  async waitFor(pred: (e: WorkerEvent) => boolean, ms: number, what = "event", from = 0): Promise<WorkerEvent> {
    const deadline = performance.now() + ms;
    for (;;) {
      for (const e of this.events.slice(from)) if (pred(e)) return e;
      if (!this.running) throw new Error(`${this.name} exited before ${what}; stderr:\n${this.stderr}`);
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`${this.name}: no ${what} within ${ms} ms; stderr:\n${this.stderr.slice(-4000)}`);
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(t);
          this.waiters.delete(done);
          resolve();
        };
        const t = setTimeout(done, Math.min(left, 500));
        this.waiters.add(done);
      });
    }
  }

  /** Sends a command and waits for its answer (bounded by `ms`). */
  async call<T = unknown>(op: string, args: Record<string, unknown> = {}, ms = 15_000): Promise<T> {
    const id = this.nextId++;
    const from = this.events.length;
    this.proc.stdin.write(`${JSON.stringify({ id, op, ...args })}\n`);
    const r = await this.waitFor((e) => e.id === id, ms, `answer to ${op}`, from);
    if (r.ok !== true) throw new Error(`${this.name} ${op}: ${String(r.error)}`);
    return r.result as T;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.running) this.proc.kill(signal);
  }

  /** SIGCONT + SIGKILL, then waits for the exit (bounded). */
  async destroy(): Promise<void> {
    if (!this.running) return;
    this.proc.kill("SIGCONT");
    this.proc.kill("SIGKILL");
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.exited, new Promise((r) => (timer = setTimeout(r, 5000)))]);
    clearTimeout(timer); // a pending 5 s timer would be a handle left open after the test
  }
}

/** What a worker reported when ready. */
export interface Ready {
  readonly worker: Worker;
  readonly peers: Target[];
}

/**
 * Spawns a worker with `cfg` and waits for its `ready` event. `netns` runs it
 * inside that network namespace (`ip netns exec`, which execs: the pid is
 * node's); `gc` exposes `global.gc` (the soak samples the heap after a GC).
 */
export async function spawnWorker(
  name: string,
  cfg: WorkerConfig,
  o: { netns?: string; gc?: boolean; readyMs?: number } = {},
): Promise<Ready> {
  const nodeArgs = [...(o.gc ? ["--expose-gc"] : []), "--import", "tsx", workerPath];
  const [cmd, args] = o.netns ? ["ip", ["netns", "exec", o.netns, process.execPath, ...nodeArgs]] : [process.execPath, nodeArgs];
  const proc = spawn(cmd as string, args as string[], { stdio: ["pipe", "pipe", "pipe"] });
  const w = new Worker(name, proc);
  proc.stdin.write(`${JSON.stringify(cfg)}\n`);
  try {
    const ready = await w.waitFor((e) => e.ev === "ready", o.readyMs ?? 20_000, "ready");
    return { worker: w, peers: ready.peers as Target[] };
  } catch (e) {
    await w.destroy();
    throw e;
  }
}

/** Kills every worker still running (after hooks). */
export async function killAllWorkers(): Promise<void> {
  await Promise.all([...alive].map((w) => w.destroy()));
}

/** The worker configuration of a peer made with createPeerMaterial. */
export function workerPeer(
  m: PeerMaterial,
  trust: Readonly<Record<string, CertificateAuthority>>,
  o: { listen?: { host: string; port: number }; tls?: boolean } = {},
): WorkerPeerConfig {
  const tls = o.tls ?? true;
  const all: Record<string, CertificateAuthority> = { [m.mspId]: m.ca, ...trust };
  return {
    mspId: m.mspId,
    identity: { certPem: m.identity.certPem, keyPem: m.identity.keyPem },
    tlsServer: tls ? { certPem: m.tlsServer.certPem, keyPem: m.tlsServer.keyPem } : undefined,
    tlsClient: tls ? { certPem: m.tlsClient.certPem, keyPem: m.tlsClient.keyPem } : undefined,
    trustedRoots: Object.fromEntries(Object.entries(all).map(([k, v]) => [k, [v.certPem]])),
    listen: o.listen,
  };
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Runs a command synchronously (bounded), returning status and output. */
export function sh(cmd: string, args: readonly string[], timeoutMs = 10_000): { ok: boolean; out: string } {
  const r = spawnSync(cmd, [...args], { encoding: "utf8", timeout: timeoutMs });
  return { ok: r.status === 0, out: `${r.stdout ?? ""}${r.stderr ?? ""}`.trim() };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** `p`, or undefined once `ms` passed; the timer is cleared either way, so no handle is left open. */
export async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
